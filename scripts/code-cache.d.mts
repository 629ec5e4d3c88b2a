/** Types of scripts/code-cache.mjs, for the tests that drive it. */
export declare const NODE_FLAGS: ReadonlyArray<string>
export declare const writeCodeCaches: (
  dir: string,
  programs: ReadonlyArray<string>,
  options: { readonly node?: string; readonly loader: string }
) => void
