/** Types of scripts/reliability-report.mjs, for the test that drives it. */
export declare const EXPECTED: ReadonlyArray<string>
export declare class ReportError extends Error {}
export declare const readRows: (dir: string) => Array<Record<string, unknown>>
export declare const renderFigures: (
  rows: ReadonlyArray<Record<string, unknown>>,
  meta: { readonly date: string; readonly commit: string; readonly cpus: number; readonly node: string }
) => string
export declare const spliceFigures: (doc: string, kind: "long" | "ci", block: string) => string
export declare const writeReport: (dir: string, docPath: string, now?: Date) => { readonly kind: "long" | "ci"; readonly rows: number }
