/**
 * Child process for the crash test: opens the db given as argv[2], starts a transaction,
 * stores argv[3] keys, says READY on stdout and then waits forever inside the transaction
 * (the parent kills it with SIGKILL).
 */
import { Effect } from "effect"
import * as Twoskip from "../../src/store/twoskip/index.js"

const file = process.argv[2]!
const count = Number(process.argv[3] ?? "10")

Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const db = yield* Twoskip.open(file)
      yield* db.transaction((txn) =>
        Effect.gen(function* () {
          for (let i = 0; i < count; i++) yield* txn.store(Buffer.from(`crash${i}`), Buffer.from(`uncommitted${i}`))
          yield* txn.delete(Buffer.from("keep0"))
          yield* Effect.sync(() => process.stdout.write("READY\n"))
          yield* Effect.never
        })
      )
    })
  )
).catch((e) => {
  process.stderr.write(`child failed: ${String(e)}\n`)
  process.exit(3)
})
