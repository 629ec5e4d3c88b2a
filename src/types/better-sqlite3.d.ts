// Minimal typings for the parts of better-sqlite3 this project uses directly (the store's
// read-only index summary; everything else goes through @effect/sql-sqlite-node).
declare module "better-sqlite3" {
  interface Statement {
    raw(toggle?: boolean): this
    safeIntegers(toggle?: boolean): this
    all(...params: ReadonlyArray<unknown>): Array<Array<unknown>>
  }
  interface Database {
    prepare(sql: string): Statement
    pragma(text: string): unknown
    close(): void
  }
  interface DatabaseConstructor {
    new (filename: string, options?: { readonly readonly?: boolean; readonly fileMustExist?: boolean; readonly timeout?: number }): Database
  }
  const Database: DatabaseConstructor
  export default Database
}
