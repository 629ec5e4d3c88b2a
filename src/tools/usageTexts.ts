/**
 * Usage texts of the companion tools. `cyr_backup` and `ctl_backups` print Cyrus 3.6.1's
 * own text (with our additions marked in docs/tools.md): `-o` for cyr_backup, and the
 * delete, move and reconstruct commands of ctl_backups.
 */

export const cyrBackupUsage = (argv0: string): string =>
  [
    "Usage:",
    ...[
      "list chunks",
      "list mailboxes",
      "list messages",
      "list all",
      "show chunks id...",
      "show mailboxes [mboxname | uniqueid]...",
      "show messages guid...",
      "dump chunk id",
      "dump message guid",
      "json chunks",
      "json mailboxes",
      "json messages",
      "json headers guid..."
    ].map((c) => `    ${argv0} [options] [mode] backup ${c}`),
    "",
    "Commands:",
    "    list                # list specified items",
    "    show                # show detailed information for specified items",
    "    dump                # show entire item",
    "    json                # show detailed information in json format",
    "",
    "Options:",
    "    -C alt_config       # alternate config file",
    "    -o file             # dump: write to file instead of standard output",
    "    -v                  # verbose",
    "",
    "Modes:",
    "    -f                  # specified backup interpreted as filename",
    "    -m                  # specified backup interpreted as mboxname",
    "    -u                  # specified backup interpreted as userid (default)",
    "",
    ""
  ].join("\n")

export const ctlBackupsUsage = (argv0: string): string =>
  [
    "Usage:",
    ...[
      "compact [mode] backup...",
      "delete [mode] backup",
      "health [-w warn] [-c crit]",
      "list [list_opts] [[mode] backup...]",
      "lock [lock_opts] [mode] backup",
      "metrics [--per-user] [--textfile dir]",
      "move [mode] backup partition",
      "pull [-A | userid...]",
      "push [mode] backup...",
      "reconstruct",
      "reindex [mode] backup...",
      "stat [mode] backup...",
      "verify [-O] [mode] backup..."
    ].map((c) => `    ${argv0} [options] ${c}`),
    "",
    "Commands:",
    "    compact             # compact specified backups",
    "    delete              # delete specified backup (files and backups.db entry)",
    "    health              # Nagios check: age of every backup's last success",
    "    list [list_opts]    # list backups (all if none specified)",
    "    lock [lock_opts]    # lock specified backup",
    "    metrics             # Prometheus metrics of all backups and of backupd",
    "    move                # move specified backup to another partition",
    "    pull                # rebuild backups from the object store",
    "    push                # upload pending chunks to the object store",
    "    reconstruct         # rebuild backups.db from the backup partitions",
    "    reindex             # reindex specified backups",
    "    stat                # show stats of specified backups",
    "    verify              # verify specified backups (-O: their objects in the store)",
    "",
    "Options:",
    "    -C alt_config       # alternate config file",
    "    -F                  # force (run command even if not needed)",
    "    -S                  # stop on error",
    "    -V                  # don't verify checksums (faster read-only ops)",
    "    -j                  # output in JSON format",
    "    -v                  # verbose (repeat for more verbosity)",
    "    -w                  # wait for locks (don't skip locked backups)",
    "",
    "List options:",
    "    -t [hours]          # stale (no update in hours) backups only (default: 24)",
    "",
    "Lock options:",
    "    -c                  # exclusively create backup",
    "    -p                  # lock backup and wait for eof on stdin (default)",
    "    -s                  # lock backup and open index in sqlite3",
    "    -x command          # lock backup and execute command",
    "",
    "Metrics options:",
    "    --per-user          # one series per user as well",
    "    --textfile dir      # write dir/cyrus_backup.prom (node_exporter textfile collector)",
    "",
    "Health options:",
    "    -w age              # warning when a backup's last success is older (default: backup_stale_after)",
    "    -c age              # critical when older (default: twice backup_stale_after); bare number = hours",
    "",
    "Modes:",
    "    -A                  # all known backups",
    "    -D                  # specified backups interpreted as domains",
    "    -P                  # specified backups interpreted as userid prefixes",
    "    -f                  # specified backups interpreted as filenames",
    "    -m                  # specified backups interpreted as mboxnames",
    "    -u                  # specified backups interpreted as userids (default)",
    "",
    "    Modes -A, -D, -P not available for all commands",
    "",
    ""
  ].join("\n")

export const restoreUsage = `Usage:
    restore [options] server [mode] backup [mboxname | uniqueid | guid]...

Options:
    -A [acl]            # give restored mailboxes this acl
    -C alt_config       # use alt_config instead of /etc/imapd.conf
    -D                  # keep the deletedprefix of mailbox names
    -F input-file       # read the mailboxes/messages to restore from a file
    -L                  # local mailbox operations only (no mupdate)
    -M mboxname         # restore messages into this mailbox
    -P partition        # restore mailboxes to this partition
    -U                  # keep uniqueid, uid, modseq and the like
    -X                  # leave out expunged messages
    -a                  # restore every mailbox in the backup
    -n                  # dry run: count the work, change nothing
    -r                  # recurse into submailboxes
    -v                  # more output (repeatable)
    -w seconds          # wait this long before starting
    -x                  # only expunged messages
    -z                  # require compression

Modes:
    -f                  # backup is a file name
    -m                  # backup is a mailbox name
    -u                  # backup is a userid (default)`
