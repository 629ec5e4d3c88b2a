/**
 * Process signals as Cyrus services treat them. SIGTERM, SIGINT and SIGQUIT ask for a graceful
 * shutdown (the current command finishes, open backups are closed through their Scopes, exit 75);
 * SIGHUP ends the process after the current session (or at once while waiting for one).
 * Node already ignores SIGPIPE.
 */
import { Context, Deferred, Effect, Layer, Option } from "effect"
import type { StopReason } from "../session/StopReason.js"

export interface SignalsShape {
  /** Completes with the first stop request. */
  readonly stopRequested: Deferred.Deferred<StopReason>
  /** The request so far, without waiting. */
  readonly poll: Effect.Effect<Option.Option<StopReason>>
}

const make = (stopRequested: Deferred.Deferred<StopReason>): SignalsShape => ({
  stopRequested,
  poll: Deferred.poll(stopRequested).pipe(
    Effect.flatMap(Option.match({ onNone: () => Effect.succeedNone, onSome: (done) => Effect.asSome(done) }))
  )
})

export class Signals extends Context.Tag("Signals")<Signals, SignalsShape>() {
  /** Installs the process signal handlers for the lifetime of the layer. */
  static readonly live: Layer.Layer<Signals> = Layer.scoped(
    Signals,
    Effect.gen(function* () {
      const stopRequested = yield* Deferred.make<StopReason>()
      const handlers: Array<[NodeJS.Signals, () => void]> = [
        ["SIGTERM", () => Deferred.unsafeDone(stopRequested, Effect.succeed("terminate"))],
        ["SIGINT", () => Deferred.unsafeDone(stopRequested, Effect.succeed("terminate"))],
        ["SIGQUIT", () => Deferred.unsafeDone(stopRequested, Effect.succeed("terminate"))],
        ["SIGHUP", () => Deferred.unsafeDone(stopRequested, Effect.succeed("hangup"))]
      ]
      yield* Effect.acquireRelease(
        Effect.sync(() => handlers.forEach(([sig, h]) => process.on(sig, h))),
        () => Effect.sync(() => handlers.forEach(([sig, h]) => process.off(sig, h)))
      )
      return make(stopRequested)
    })
  )
}
