/** What Cyrus's master logs when a service breaks its side of the contract (interop tests check for it). */
export const MASTER_COMPLAINTS =
  /unknown state|long dead child|not found in|service .* has bad|too many failures|SERVICE .* broken|terminated abnormally/i
