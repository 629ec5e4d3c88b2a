/** Usage texts of the companion tools; same commands, options and modes as Cyrus 3.6. */

export const ctlBackupsUsage = `Usage:
    ctl_backups [options] compact [mode] backup...
    ctl_backups [options] list [list_opts] [[mode] backup...]
    ctl_backups [options] lock [lock_opts] [mode] backup
    ctl_backups [options] move [mode] backup partition
    ctl_backups [options] reconstruct
    ctl_backups [options] reindex [mode] backup...
    ctl_backups [options] stat [mode] backup...
    ctl_backups [options] verify [mode] backup...

Options:
    -C alt_config       # use alt_config instead of /etc/imapd.conf
    -F                  # force the command even when it seems unneeded
    -S                  # stop at the first error
    -V                  # skip checksum verification (faster read-only commands)
    -j                  # JSON output
    -v                  # more output (repeatable)
    -w                  # wait for locks instead of skipping locked backups

List options:
    -t [hours]          # only backups not updated for this many hours (default 24)

Lock options:
    -c                  # create the backup exclusively
    -p                  # hold the lock until end of input on stdin (default)
    -s                  # hold the lock and open the index in sqlite3
    -x command          # hold the lock while running command

Modes:
    -A                  # every known backup
    -D                  # arguments are domains
    -P                  # arguments are userid prefixes
    -f                  # arguments are file names
    -m                  # arguments are mailbox names
    -u                  # arguments are userids (default)`

export const cyrBackupUsage = `Usage:
    cyr_backup [options] [mode] backup list chunks|mailboxes|messages|all
    cyr_backup [options] [mode] backup show chunks id...
    cyr_backup [options] [mode] backup show mailboxes [mboxname | uniqueid]...
    cyr_backup [options] [mode] backup show messages guid...
    cyr_backup [options] [mode] backup dump chunk id
    cyr_backup [options] [mode] backup dump message guid
    cyr_backup [options] [mode] backup json chunks|mailboxes|messages
    cyr_backup [options] [mode] backup json headers guid...

Options:
    -C alt_config       # use alt_config instead of /etc/imapd.conf
    -o file             # with dump: write to file instead of standard output
    -v                  # more output

Modes:
    -f                  # backup is a file name
    -m                  # backup is a mailbox name
    -u                  # backup is a userid (default)`

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
