/**
 * Reads a backupd telemetry log (format: src/telemetry/TelemetryLog.ts) back into sessions and records, to compare
 * its shape with the C backupd's captures. Records have no length: a record starts at a
 * marker `<t<` or `>t>` whose t is a unix time within a day of the session header's time.
 */
export interface TelemetryRecord {
  readonly dir: "<" | ">"
  readonly time: number
  readonly bytes: string
}

export interface TelemetrySession {
  readonly userid: string
  readonly headerTime: number
  readonly records: ReadonlyArray<TelemetryRecord>
}

const DAY = "(Sun|Mon|Tue|Wed|Thu|Fri|Sat)"
const HEADER = new RegExp(
  `^---------- (\\S+) (${DAY} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\d{4})\\n\\n`
)
const NEXT_HEADER = new RegExp(`---------- \\S+ ${DAY} `)

/** Splits a telemetry file (latin1 text) into sessions; throws on anything out of shape. */
export const parseTelemetry = (text: string): ReadonlyArray<TelemetrySession> => {
  const sessions: Array<TelemetrySession> = []
  let rest = text
  while (rest.length > 0) {
    const h = HEADER.exec(rest)
    if (h === null) throw new Error(`telemetry: no header at ${JSON.stringify(rest.slice(0, 80))}`)
    const headerTime = Math.floor(Date.parse(h[2]!) / 1000)
    rest = rest.slice(h[0].length)
    const end = rest.search(NEXT_HEADER)
    const body = end < 0 ? rest : rest.slice(0, end)
    rest = end < 0 ? "" : rest.slice(end)
    const records: Array<TelemetryRecord> = []
    const marker = /([<>])(\d{9,11})\1/g
    let last: { dir: "<" | ">"; time: number; start: number } | undefined
    for (let m = marker.exec(body); m !== null; m = marker.exec(body)) {
      const time = Number(m[2])
      if (Math.abs(time - headerTime) > 86400) continue
      if (last !== undefined) records.push({ dir: last.dir, time: last.time, bytes: body.slice(last.start, m.index) })
      else if (m.index !== 0) throw new Error("telemetry: bytes before the first record")
      last = { dir: m[1] as "<" | ">", time, start: m.index + m[0].length }
    }
    if (last !== undefined) records.push({ dir: last.dir, time: last.time, bytes: body.slice(last.start) })
    sessions.push({ userid: h[1]!, headerTime, records })
  }
  return sessions
}

/** The bytes of one direction, records concatenated. */
export const joinedRecords = (records: ReadonlyArray<TelemetryRecord>, dir: "<" | ">"): string =>
  records.filter((r) => r.dir === dir).map((r) => r.bytes).join("")
