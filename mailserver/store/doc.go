// Package store keeps the mailboxes: one Maildir++ per mailbox address, plus the small index per
// folder that holds the IMAP state Maildir lacks.
//
// # On-disk layout
//
//	<data>/mail/uidvalidity                 the last UIDVALIDITY handed out
//	<data>/mail/<domain>/<local>/           the mailbox; its root is the INBOX (Maildir++)
//	    cur/ new/ tmp/                      the INBOX Maildir
//	    .Sent/ .Drafts/ .Work.Projects/ …   other folders; IMAP hierarchy delimiter "."
//	    subscriptions                       subscribed folder names, one a line (as Dovecot)
//	    kubemail-index                      the INBOX's index (see below); one in every folder dir
//	    .Sent/maildirfolder                 the Maildir++ folder marker
//
// The layout is the standard Maildir++ one (Courier, Dovecot "maildir:" with LAYOUT=maildir++),
// so a mailbox volume can be read with mutt or Dovecot. Folder names are stored in UTF-8 on disk
// (Dovecot: mailbox_list_utf8=yes).
//
// # Message files
//
// A message file is named "<base>:2,<flags>" in cur/ and "<base>" in new/, where base is unique
// per the Maildir spec (https://cr.yp.to/proto/maildir.html): "<seconds>.M<usec>P<pid>Q<n>.<host>"
// followed by ",S=<size>" (the file size in bytes, as Dovecot writes it) so the size is known
// without a stat. Flags are the sorted letters D (Draft), F (Flagged), R (Answered), S (Seen) and
// T (Deleted). IMAP keywords live in the index. The file's mtime is the IMAP internal date.
//
// # Delivery (Deliver)
//
// One copy per recipient mailbox is made all-or-nothing: the body is streamed once into a file
// without a name (O_TMPFILE) on the first mailbox's file system, fsynced, then linked into each
// mailbox's new/ under its Maildir name (copied where linking fails across file systems); if a
// link fails, the ones made are removed again. A message file thus appears complete or not at
// all, and a crash leaves nothing half-written behind. Where such files are not supported (NFS,
// non-Linux), the Maildir way is used: the body goes into the first mailbox's tmp/, is fsynced,
// hard-linked into the other mailboxes' tmp/, and each is renamed into its new/. Finally the new/
// directories are fsynced, so the entries are durable before Deliver returns nil. Directory fsyncs
// are shared by concurrent deliveries (group commit): a caller waits for an fsync of the directory
// that started after its rename, so none is ever skipped, but one fsync covers many messages.
//
// # The index
//
// Each folder directory holds "kubemail-index", a text file rewritten atomically (tmp file, fsync,
// rename, fsync dir) whenever UIDs are assigned or keywords change:
//
//	kubemail-index 1
//	uidvalidity <n> uidnext <n>
//	<uid> <base> [keyword …]
//	…
//	end <count>
//
// A missing index is seeded from Dovecot's files where the folder has them (see Migrating from
// Dovecot). A missing, unparsable or truncated index is otherwise rebuilt from the directory with a new UIDVALIDITY
// (logged; <data>/mail/uidvalidity keeps the last one handed out, so a new one is always larger): clients then resynchronise, as RFC 9051 2.3.1.1 requires when UIDs cannot be kept.
// Files the index names but that are gone were expunged by another process; files it does not
// name are new and get the next UIDs, in the order they were delivered: by mtime, then (mail of
// one clock tick) by base name, runs of digits compared as numbers, since neither the
// microseconds nor the counter in a name are padded. New mail in new/ is moved to cur/ when it
// gets its UID.
//
// # Migrating from Dovecot
//
// A Dovecot Maildir (LAYOUT=maildir++, the default) copied into <data>/mail/<domain>/<local>/
// is served as it is, and keeps what IMAP clients cache by: when a folder without a
// kubemail-index has Dovecot's dovecot-uidlist, its first index is seeded from it rather than
// started afresh. The uidlist format (https://doc.dovecot.org/2.3/admin_manual/mailbox_formats/maildir/,
// "IMAP UID mapping"): version 3 starts "3 V<uidvalidity> N<uidnext> G<guid>" (fields in any
// order, others ignored) followed by "<uid> [<ext> …] :<filename>" lines, where extensions
// such as W<vsize> and S<size> precede the ':'; version 1 (Courier's courierimapuiddb) starts
// "1 <uidvalidity> <uidnext>" followed by "<uid> <filename>". A message is matched by its base
// name (the file name before ':'), so flags changed since the line was written do not matter.
//
//   - UIDVALIDITY and each listed message's UID are kept; UIDNEXT is the larger of N and the
//     highest listed UID plus one. Listed files still in new/ are moved to cur/ first, so they
//     keep their UIDs. Listed files that are gone are ignored; files not listed get the next
//     UIDs in the usual order (by mtime, then name). The UIDVALIDITY is recorded in
//     <data>/mail/uidvalidity if it is larger than the last one handed out, so a folder deleted
//     and made again still gets a larger one.
//   - Keywords: Dovecot keeps a message's keywords as the letters a..z in its file name's flag
//     part, letter a being the keyword on line "0 <keyword>" of the folder's dovecot-keywords,
//     and so on. They become the message's keywords in the index (also when the uidlist is
//     damaged). The letters stay in the file names; kubemail reads keywords from its index only.
//   - A uidlist that cannot be parsed (unknown version, no UIDVALIDITY, a line without a UID or
//     name, UIDs not ascending, a name twice) is logged and ignored: the folder is rebuilt as
//     without one. Nothing Dovecot-specific ever fails a folder.
//   - Dovecot's files (dovecot-uidlist, dovecot-keywords, dovecot.index*, dovecot-uidvalidity*)
//     are never written or removed (they go only with their folder); the uidlist and keywords
//     are read only while a folder has no kubemail-index, so changes Dovecot makes after that
//     are not seen. The subscriptions file has the same name and is read in either of
//     Dovecot's formats (one name a line, or "V\t2" with tab-separated levels).
//   - Not kept: \Recent, Dovecot's cached data (dovecot.index*: kubemail keeps none),
//     MODSEQs, POP3 UIDLs, Sieve scripts, and mail in other layouts (mbox, sdbox/mdbox, or
//     Maildir with LAYOUT=fs). One line "Kept Dovecot's UIDs" is logged per folder seeded.
//
// # Quota
//
// The store knows what each mailbox holds, as its quota counts it: the bytes and the number of
// message files in cur/ and new/ of every folder (not tmp/, not the index), each file by the S=
// size in its name or else its file size, as Dovecot's Maildir++ quota counts. A mailbox is
// counted on its first use after Open (one readdir per folder: sizes come from the names, so no
// stat per message), and the count is then kept current by every operation that adds or removes
// message files: Deliver, DeliverWithQuota, Append, CopyTo, MoveTo, Expunge and folder deletion
// (RemoveMailbox drops the count with the mailbox).
// Each holds a charge on the count from before it touches files until after (a folder rename holds
// one too); the charge reserves the bytes it may add, so concurrent operations cannot pass a quota
// together, and a recount waits until no charge is held, so it never sees an operation half done.
//
// Changes by other processes (mutt, a restore, a Dovecot LDA) are not seen as they happen. A
// mailbox is counted again at its next use once its count is 15 minutes old (Maildir++'s window),
// or as soon as a folder scan finds messages another process added to or removed from cur/.
// We recount rather than keep Maildir++'s maildirsize file: the file would save the first count
// after a restart, but it costs a write on every delivery, drifts after a crash unless each write
// is fsynced, and is only as right as every other writer is careful; a count is right after every
// restart and costs one readdir per folder. A maildirsize file found at the first count is
// removed, because kubemail does not keep it current and Dovecot or Courier would trust its stale
// sums; without it they count for themselves.
//
// Checks (RFC 9208 5.1: a limit is never exceeded by a checked operation): DeliverWithQuota,
// Append and CopyTo given a quota refuse with a *QuotaError (errors.Is ErrOverQuota), storing
// nothing, when what the mailbox holds plus what operations under way reserved plus the new
// bytes would pass it. DeliverWithQuota is all-or-nothing across its mailboxes like Deliver: if
// one would pass its quota, none gets a copy, and the error names every such mailbox. Never
// checked: Deliver (mail the server owes the user, such as delivery status notices), MoveTo (a
// move within a mailbox does not change what it holds; a user over quota can still move mail to
// Trash), Expunge and folder deletion. A mailbox can thus be over its quota (after Deliver, or when
// its quota is lowered); every checked addition is then refused until mail is removed.
//
// # Removing a mailbox (RemoveMailbox, ReviveMailboxes)
//
// A mailbox whose address is no longer one (a Mailbox deleted with reclaimPolicy Delete) is
// removed with its mail while the server runs. What the store keeps of a mailbox in memory (the
// Maildirs it knows exist, the loaded folders with their IMAP observers, the quota count) belongs
// to one life of the mailbox: Accounts, Folders and deliveries keep the life they started in, a
// removal ends it, and the next use of the address once it is revived starts a new, empty one.
// The rule:
//
//   - Every operation that changes a mailbox's files runs inside its life: a delivery while it
//     makes the Maildir and from its charge on (the body is written before, so a slow client
//     holds nothing up), account operations under the store's lock, folder operations under
//     the folder's lock, and everything that holds a charge (see Quota).
//   - RemoveMailbox tombstones the address and marks the life removed, in one step under the
//     lock that starts lives, so no operation starts in it any more: each fails with
//     ErrMailboxRemoved (errors.Is ErrFolderGone too). It waits for those under way, which
//     only do disk work. Then, holding the store's lock and that of every loaded folder, it
//     renames the Maildir into a trash directory (one rename on the same file system), marks
//     the folders gone and forgets the life; it fsyncs both parent directories, and only then
//     removes the trash copy. If the rename fails, the life goes on as before, and the address
//     is tombstoned only if it already was.
//   - The tombstone outlives the removal. The only ways into a mailbox from its address,
//     Account (an IMAP login) and Deliver/DeliverWithQuota, check it with the life in that same
//     step, and fail with ErrMailboxRemoved while it stands; everything else works through an
//     Account, in its life. An Account checks holding the store's lock and makes the
//     directories before letting go of it, and RemoveMailbox takes that lock to move the
//     Maildir away after tombstoning, so an Account either is done before the move (what it
//     made goes with the rest) or is refused; a delivery makes the Maildir as an operation
//     under way, which RemoveMailbox waits for, or is refused. So once RemoveMailbox has
//     returned, the address has no Maildir until ReviveMailboxes, however late an operation
//     that began before the removal comes (an IMAP login whose password was checked against an
//     older config, an SMTP transaction accepted before the address was purged).
//   - ReviveMailboxes lifts tombstones: the server calls it with the addresses that are
//     mailboxes of the config in force, and never removes one of those. Tombstones live in
//     memory only; after a restart the server removes the address again at start-up, which
//     tombstones it again before anything is served.
//
// A delivery racing with a removal thus either ends before it (its copy is removed with the
// rest) or fails with ErrMailboxRemoved, which SMTP answers with 451 4.3.0; the sender or the
// queue retries, and by then the address is no mailbox (550 at RCPT, or a bounce from the
// queue) or is a new one. An IMAP login whose Account fails so is refused like bad
// credentials. An IMAP session on the mailbox gets NO [NONEXISTENT] for its folders from then
// on, and nothing it does makes a directory again, even once a new mailbox has the address: the
// old Account and Folders stay in the old life. No operation makes an entry in the trash (every
// one names its files by their path in the mailbox); a file open in tmp/ at the rename (a body
// being written) is unlinked with the trash copy. A crash leaves the whole mailbox in place or
// the whole of it in the trash, which its owner empties.
//
// # Change notification
//
// Every change made through the store (delivery, append, flags, expunge, folder operations) is
// reported at once to observers of the folder (the IMAP server's mailbox trackers), so an IDLE
// client learns of new mail immediately. Changes made by other processes are noticed on the next
// Poll, which rescans a folder when the mtime of its new/ or cur/ directory has changed. A
// directory timestamp can be coarse (the jiffy clock of Linux before 6.13, seconds on some NFS
// servers), so a change in the same tick as our last scan would leave it unchanged: a stamp
// younger than two seconds when recorded is racy, and the first poll after those two seconds
// rescans once regardless (as git and Dovecot do).
package store
