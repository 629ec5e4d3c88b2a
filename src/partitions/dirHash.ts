/**
 * The one-character hashed subdirectory Cyrus puts a new backup in (`dir_hash_c`).
 * `userid` is a byte string (one char per byte, latin1).
 */
export const dirHash = (userid: string, fulldirhash: boolean): string => {
  if (fulldirhash) {
    // a rotating xor over the bytes before the first '.' (or NUL), modulo 23 letters from 'A'
    let n = 0
    for (let i = 0; i < userid.length; i++) {
      const byte = userid.charCodeAt(i) & 0xff
      if (byte === 0x2e || byte === 0) break
      n = (((n << 3) ^ (n >>> 5)) ^ byte) >>> 0
    }
    return String.fromCharCode(0x41 + (n % 23))
  }
  const first = userid.length > 0 ? userid.charCodeAt(0) : 0
  const lower = first >= 0x41 && first <= 0x5a ? first + 0x20 : first
  return lower >= 0x61 && lower <= 0x7a ? String.fromCharCode(lower) : "q"
}
