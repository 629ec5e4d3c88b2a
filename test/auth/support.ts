/** Shared helpers for the auth tests. */
import { Effect } from "effect"
import type { AuthStep } from "../../src/auth/exchange.js"
import { makeAuthSettings, type AuthSettings } from "../../src/auth/settings.js"
import { Duration } from "effect"

export const b64 = (s: string): string => Buffer.from(s, "latin1").toString("base64")

/** Fast settings: no failed-login pause, plaintext allowed, alwaystrue unless overridden. */
export const testSettings = (o: Partial<AuthSettings> = {}): AuthSettings =>
  makeAuthSettings({
    allowPlaintext: true,
    mechList: "PLAIN LOGIN",
    pwcheckMethod: "alwaystrue",
    admins: "admin",
    failedLoginPause: Duration.zero,
    ...o
  })

/**
 * Play a whole exchange: the server lines it produced (challenges and the final reply) for
 * the given client lines, in transcript form.
 */
export const play = (first: Effect.Effect<AuthStep>, clientLines: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const out: Array<string> = []
    let step = yield* first
    let i = 0
    while (step._tag === "Challenge") {
      out.push(step.line)
      const line = clientLines[i++]
      if (line === undefined) return { lines: out, final: step }
      step = yield* step.respond(line + "\r\n")
    }
    out.push(step.reply)
    return { lines: out, final: step }
  })
