//! cutover: moves mailboxes from IMAP servers into Exchange Online or any IMAP target.
