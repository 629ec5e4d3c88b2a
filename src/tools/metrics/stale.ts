/**
 * A backup's last success, and when it counts as stale, for `ctl_backups list -j`, `metrics` and `health`. A module of
 * its own so that `list`, which prints it, does not load the survey (and the object store's
 * upload planner the survey reads).
 */

/**
 * The last success a backup's latest chunk proves: its end time, or its start time when it has
 * no end (a Cyrus backupd that stopped before ending it: a chunk exists only once an APPLY was
 * committed into it); undefined: no chunk. `list -j`, `stat -j`, `metrics` and `health` all
 * take it from here.
 */
export const lastSuccessOf = (latest: { readonly tsStart: number; readonly tsEnd: number | null | undefined } | undefined): number | undefined =>
  latest === undefined ? undefined : (latest.tsEnd ?? latest.tsStart)

/** Stale: no success known, or the last one longer ago than `staleAfter` seconds. */
export const isStale = (lastSuccess: number | undefined, staleAfter: number, now: number): boolean =>
  lastSuccess === undefined || now - lastSuccess > staleAfter
