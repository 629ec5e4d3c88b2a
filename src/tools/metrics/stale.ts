/**
 * When a backup counts as stale, for `ctl_backups list -j`, `metrics` and `health`. A module of
 * its own so that `list`, which prints it, does not load the survey (and the object store's
 * upload planner the survey reads).
 */

/** Stale: no success known, or the last one longer ago than `staleAfter` seconds. */
export const isStale = (lastSuccess: number | undefined, staleAfter: number, now: number): boolean =>
  lastSuccess === undefined || now - lastSuccess > staleAfter
