/** Types of scripts/build-release.mjs, for the tests that drive it. */
import type { BuildOptions } from "esbuild"

export declare const PROGRAMS: ReadonlyArray<string>
export declare const NATIVE_ADDONS: Readonly<Record<string, string>>
export declare const repoRoot: string
export declare class ReleaseError extends Error {}
export declare const resolveCommit: (explicit?: string) => string
export declare const resolveEpoch: (explicit?: string | number) => number
export declare const bundleOptions: (entryPoints: ReadonlyArray<string>, outdir: string) => BuildOptions & { write: false }

export interface ReleaseFile {
  readonly name: string
  readonly sha256: string
}

export interface BuiltRelease {
  readonly outDir: string
  readonly buildInfo: { readonly name: string; readonly version: string; readonly commit: string }
  readonly epoch: number
  readonly files: ReadonlyArray<ReleaseFile>
}

export declare const buildRelease: (options?: {
  readonly outDir?: string
  readonly commit?: string
  readonly epoch?: string | number
}) => Promise<BuiltRelease>
