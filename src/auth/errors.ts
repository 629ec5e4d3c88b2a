/** Errors of the authentication area. */
import { Data } from "effect"

/** `sasl_pwcheck_method` names a verifier we do not implement (auxprop, pwcheck, ...). */
export class UnsupportedPwcheckMethod extends Data.TaggedError("UnsupportedPwcheckMethod")<{
  readonly method: string
  /** True when no method was configured and libsasl's default (`auxprop`) applies. */
  readonly defaulted: boolean
}> {
  override get message(): string {
    const which = this.defaulted
      ? `sasl_pwcheck_method is not set, so libsasl's default "auxprop" would apply`
      : `sasl_pwcheck_method "${this.method}" is not supported`
    return `${which}; supported methods: saslauthd, alwaystrue ` +
      `(for a sasldb user database run "saslauthd -a sasldb" and set sasl_pwcheck_method: saslauthd)`
  }
}

/** A saslauthd round trip failed (connect, I/O, timeout, malformed answer). */
export class SaslauthdError extends Data.TaggedError("SaslauthdError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `saslauthd at ${this.path}: ${this.reason}`
  }
}
