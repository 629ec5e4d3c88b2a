/** Why backupd cannot start serving, besides a configuration file it cannot read (ConfigError). */
import { Data } from "effect"

/** The TLS options of imapd.conf name files that cannot be read. */
export class TlsSetupFailed extends Data.TaggedError("TlsSetupFailed")<{ readonly reason: string }> {
  override get message(): string {
    return `TLS setup failed: ${this.reason}`
  }
}

/** `-s` (TLS from the first byte) without `tls_server_cert` and `tls_server_key`. */
export class TlsRequired extends Data.TaggedError("TlsRequired")<{}> {
  override get message(): string {
    return "imaps: required OpenSSL options not present"
  }
}

/** The uploader could not open a data file for reading (the upload is tried again later). */
export class UploadSourceUnreadable extends Data.TaggedError("UploadSourceUnreadable")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `cannot open ${this.path} for the upload: ${this.reason}`
  }
}
