/**
 * The standard streams of a tool run. Text is written as bytes: a plain JS string is a
 * byte string (latin1, one char per byte) like every name and path we handle; `utf8`
 * writes real text (JSON dumps). Writes wait for the stream to drain, so large dumps do
 * not pile up in memory.
 */
import { Effect } from "effect"

export interface ToolIo {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly stdin: NodeJS.ReadableStream
  /** Whether stderr is a terminal (progress bars are drawn only then). */
  readonly stderrIsTty: boolean
  /** Whether stdout is a terminal (progress bars need both). */
  readonly stdoutIsTty?: boolean
  readonly env: Readonly<Record<string, string | undefined>>
}

export const processIo = (): ToolIo => ({
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  stderrIsTty: process.stderr.isTTY === true,
  stdoutIsTty: process.stdout.isTTY === true,
  env: process.env
})

export const writeBytes = (stream: NodeJS.WritableStream, bytes: Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (bytes.length === 0) return resume(Effect.void)
    if (stream.write(bytes)) resume(Effect.void)
    else stream.once("drain", () => resume(Effect.void))
  })

const latin1 = (s: string) => Buffer.from(s, "latin1")

export interface Printer {
  readonly out: (s: string) => Effect.Effect<void>
  readonly err: (s: string) => Effect.Effect<void>
  readonly outBytes: (b: Uint8Array) => Effect.Effect<void>
  readonly outUtf8: (s: string) => Effect.Effect<void>
}

export const printer = (io: ToolIo): Printer => ({
  out: (s) => writeBytes(io.stdout, latin1(s)),
  err: (s) => writeBytes(io.stderr, latin1(s)),
  outBytes: (b) => writeBytes(io.stdout, b),
  outUtf8: (s) => writeBytes(io.stdout, Buffer.from(s, "utf8"))
})
