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
// A missing, unparsable or truncated index is rebuilt from the directory with a new UIDVALIDITY
// (logged; <data>/mail/uidvalidity keeps the last one handed out, so a new one is always larger): clients then resynchronise, as RFC 9051 2.3.1.1 requires when UIDs cannot be kept.
// Files the index names but that are gone were expunged by another process; files it does not
// name are new and get the next UIDs. New mail in new/ is moved to cur/ when it gets its UID.
//
// # Change notification
//
// Every change made through the store (delivery, append, flags, expunge, folder operations) is
// reported at once to observers of the folder (the IMAP server's mailbox trackers), so an IDLE
// client learns of new mail immediately. Changes made by other processes are noticed on the next
// Poll, which rescans a folder when the mtime of its new/ or cur/ directory has changed.
package store
