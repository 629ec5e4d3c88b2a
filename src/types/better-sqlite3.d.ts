// Minimal typings for the parts of better-sqlite3 this project uses directly (the store's
// read-only index snapshot, index/summary.ts; everything else goes through @effect/sql-sqlite-node).
declare module "better-sqlite3" {
  interface Statement {
    safeIntegers(toggle?: boolean): this
    /** Rows as column-name records. */
    all(...params: ReadonlyArray<unknown>): Array<Record<string, unknown>>
    /** The same statement returning rows as arrays of column values. */
    raw(toggle: true): RawStatement
  }
  interface RawStatement {
    all(...params: ReadonlyArray<unknown>): Array<Array<unknown>>
  }
  interface Database {
    prepare(sql: string): Statement
    pragma(text: string): unknown
    exec(sql: string): this
    close(): void
  }
  interface DatabaseConstructor {
    new (filename: string, options?: { readonly readonly?: boolean; readonly fileMustExist?: boolean; readonly timeout?: number }): Database
  }
  const Database: DatabaseConstructor
  export default Database
}
