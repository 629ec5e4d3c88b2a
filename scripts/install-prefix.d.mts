/** Types of scripts/install-prefix.mjs, for the tests that drive it. */
export declare class InstallError extends Error {}
export declare const layout: (prefix: string) => { readonly libDir: string; readonly libexecDir: string }
export declare const installRelease: (options?: {
  readonly prefix?: string
  readonly destdir?: string
  readonly node?: string
  readonly from?: string
}) => { readonly libDir: string; readonly libexecDir: string; readonly programs: ReadonlyArray<string> }
