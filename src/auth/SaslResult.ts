/**
 * The libsasl result codes an exchange can end with, and the English text libsasl's
 * `sasl_errstring` gives for each: backupd answers a failed AUTHENTICATE with `NO <text>`.
 */
export type SaslResult =
  | "CONTINUE"
  | "FAIL"
  | "BUFOVER"
  | "NOMECH"
  | "BADPROT"
  | "BADAUTH"
  | "NOAUTHZ"
  | "TOOWEAK"
  | "ENCRYPT"
  | "NOUSER"

const texts: Record<SaslResult, string> = {
  CONTINUE: "another step is needed in authentication",
  FAIL: "generic failure",
  BUFOVER: "overflowed buffer",
  NOMECH: "no mechanism available",
  BADPROT: "bad protocol / cancel",
  BADAUTH: "authentication failure",
  NOAUTHZ: "authorization failure",
  TOOWEAK: "mechanism too weak for this user",
  ENCRYPT: "encryption needed to use mechanism",
  NOUSER: "user not found"
}

export const saslErrorText = (r: SaslResult): string => texts[r]

/** A failed step: the result code plus a detail line for the `badlogin:` log. */
export interface SaslFailure {
  readonly result: SaslResult
  readonly detail: string
}

export const saslFailure = (result: SaslResult, detail: string): SaslFailure => ({ result, detail })
