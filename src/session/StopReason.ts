/**
 * Why the process asked a session to stop: `terminate` (SIGTERM, SIGINT, SIGQUIT) ends it
 * between commands; `hangup` (SIGHUP) lets it run to its end. The service's Signals layer
 * produces these; the command loop acts on them.
 */
export type StopReason = "terminate" | "hangup"
