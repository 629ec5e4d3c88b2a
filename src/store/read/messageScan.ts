/**
 * Finding one message's bytes inside an inflated chunk without buffering it: skip to the
 * line's offset, walk the `<ts> APPLY MESSAGE (%{part guid size}\r\n<bytes> ...)` line and
 * hand out the bytes of the file item whose GUID matches.
 */

export class MessageScanError extends Error {}

/**
 * A pull cursor over an async sequence of byte buffers (an inflated chunk), knowing how many
 * bytes it has consumed, so that it can be moved on to a later message of the same chunk.
 */
export class ChunkCursor {
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0
  /** Uncompressed bytes of the chunk consumed so far. */
  consumed = 0
  /** The offset of the MESSAGE line whose items the cursor is between (just after one), if any. */
  inLine: number | undefined = undefined
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      const r = await this.it.next()
      if (r.done) return false
      this.buf = r.value
      this.pos = 0
    }
    return true
  }

  async byte(): Promise<number> {
    if (!(await this.fill())) throw new MessageScanError("chunk ended inside the line")
    this.consumed++
    return this.buf[this.pos++]!
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (!(await this.fill())) throw new MessageScanError("chunk ended before the line's offset")
      const k = Math.min(n, this.buf.length - this.pos)
      this.pos += k
      this.consumed += k
      n -= k
    }
  }

  async *take(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (!(await this.fill())) throw new MessageScanError("chunk ended inside a message")
      const k = Math.min(n, this.buf.length - this.pos)
      const out = this.buf.subarray(this.pos, this.pos + k)
      this.pos += k
      this.consumed += k
      n -= k
      yield out
    }
  }

  /** Ends the underlying sequence (the inflate behind it). */
  async close(): Promise<void> {
    await this.it.return?.(undefined)
  }

  /** Bytes up to (not including) `stop`, which is consumed. */
  async until(stop: number, max = 4096): Promise<string> {
    let s = ""
    for (;;) {
      const b = await this.byte()
      if (b === stop) return s
      s += String.fromCharCode(b)
      if (s.length > max) throw new MessageScanError("field too long")
    }
  }

  async expect(text: string): Promise<void> {
    for (let i = 0; i < text.length; i++) {
      if ((await this.byte()) !== text.charCodeAt(i)) throw new MessageScanError(`expected ${JSON.stringify(text)}`)
    }
  }
}

const SP = 0x20

/** An astring that is an atom or a quoted string, followed by one SP. */
const astringThenSp = async (c: ChunkCursor): Promise<string> => {
  const first = await c.byte()
  if (first === 0x22) {
    let s = ""
    for (;;) {
      const b = await c.byte()
      if (b === 0x22) break
      s += String.fromCharCode(b === 0x5c ? await c.byte() : b)
    }
    await c.expect(" ")
    return s
  }
  return String.fromCharCode(first) + (await c.until(SP))
}

/**
 * Yields the bytes of the message `guid` from the chunk data `chunk` (uncompressed), whose
 * MESSAGE line starts at `lineOffset`. Throws MessageScanError if it is not there.
 */
export async function* scanMessage(chunk: AsyncIterator<Buffer>, lineOffset: number, guid: string): AsyncGenerator<Buffer> {
  yield* scanMessageAt(new ChunkCursor(chunk), lineOffset, guid)
}

/** The message is not in the rest of its line (it may be in the part the cursor has passed). */
export class NotInRestOfLine extends MessageScanError {}

/** Whether `scanMessageAt(c, lineOffset, ...)` can work from where `c` is. */
export const cursorCanReach = (c: ChunkCursor, lineOffset: number): boolean => c.inLine === lineOffset || c.consumed <= lineOffset

/**
 * As `scanMessage`, from a cursor that has not passed `lineOffset`, or that is between the
 * items of that very line (after an earlier message of it); the cursor is left just after the
 * message's bytes, ready for a later message of the chunk. A cursor in the line that does not
 * find the message in the rest of it throws NotInRestOfLine.
 */
export async function* scanMessageAt(c: ChunkCursor, lineOffset: number, guid: string): AsyncGenerator<Buffer> {
  const resumed = c.inLine === lineOffset
  if (!resumed) {
    if (c.consumed > lineOffset) throw new MessageScanError("the cursor is past the message's line")
    c.inLine = undefined
    await c.skip(lineOffset - c.consumed)
    const ts = await c.until(SP, 32)
    if (!/^[0-9]+$/.test(ts)) throw new MessageScanError("no timestamp at the message offset")
    await c.expect("APPLY MESSAGE (")
  }
  c.inLine = undefined
  const wanted = guid.toLowerCase()
  for (;;) {
    const b = await c.byte()
    if (b === 0x29) throw resumed ? new NotInRestOfLine(`message ${guid} not in the rest of its line`) : new MessageScanError(`message ${guid} not in its line`)
    if (b === SP) continue
    if (b !== 0x25) throw new MessageScanError("unexpected item in a MESSAGE line")
    await c.expect("{")
    await astringThenSp(c)
    const g = await astringThenSp(c)
    const sizeText = await c.until(0x7d, 24)
    if (!/^[0-9]+$/.test(sizeText)) throw new MessageScanError("bad message size")
    let nl = await c.byte()
    if (nl === 0x0d) nl = await c.byte()
    if (nl !== 0x0a) throw new MessageScanError("no newline after a message header")
    const size = Number(sizeText)
    if (g.toLowerCase() === wanted) {
      yield* c.take(size)
      c.inLine = lineOffset
      return
    }
    await c.skip(size)
  }
}
