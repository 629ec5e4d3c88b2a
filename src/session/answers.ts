/**
 * The one place where the outcome of an APPLY or GET becomes its final reply line
 * (docs/architecture.md, "APPLY and GET"). The original collapses every other failure into `NO Unknown error`
 * (docs/gaps.md G11); we keep that wire text — sync_client maps any unlisted NO the same way —
 * but log the real reason so the administrator can see it.
 */
import { Data } from "effect"
import type { ServiceLog } from "../telemetry/ServiceLog.js"
import { ApplyReply } from "./replies.js"

/** A refusal decided by the protocol layer itself. */
export class Refused extends Data.TaggedError("Refused")<{
  readonly code: "protocol" | "bad-parameters" | "nonexistent"
  readonly detail: string
}> {
  override get message(): string {
    return `${this.code}: ${this.detail}`
  }
}

export type CommandFailure =
  | Refused
  | { readonly _tag: "BackupLocked"; readonly path: string }
  | { readonly _tag: "AppendRejected"; readonly reason: "bad-parameters" | "protocol" | "nonexistent" | "internal"; readonly message: string }
  | { readonly _tag: string; readonly message?: string }

export const replyFor = (failure: CommandFailure, context: string, log: ServiceLog): string => {
  switch (failure._tag) {
    case "Refused": {
      const r = failure as Refused
      return r.code === "protocol" ? ApplyReply.protocolError : r.code === "bad-parameters" ? ApplyReply.badParameters : ApplyReply.mailboxNonexistent
    }
    case "BackupLocked":
      return ApplyReply.mailboxLocked
    case "AppendRejected": {
      const a = failure as Extract<CommandFailure, { _tag: "AppendRejected" }>
      if (a.reason === "bad-parameters") return ApplyReply.badParameters
      if (a.reason === "protocol") return ApplyReply.protocolError
      if (a.reason === "nonexistent") return ApplyReply.mailboxNonexistent
      break
    }
  }
  const message = (failure as { readonly message?: unknown }).message
  log.error(`IOERROR: ${context}: ${failure._tag}${typeof message === "string" && message !== "" ? `: ${message}` : ""}`)
  return ApplyReply.unknown
}
