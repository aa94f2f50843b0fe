//! The nouns every stage shares: folders with their roles, message metadata
//! from the scan, and the message handed to a target. Kept free of any
//! protocol so that `plan` and `transform` stay pure.

use std::fmt;

/// What a folder is for, whatever it is called. Targets map roles to their
/// own folders (Sent Items, Deleted Items, ...), so a localized
/// "[Gmail]/Gesendet" still lands in the target's Sent folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FolderRole {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
    /// A virtual folder holding every message (Gmail's "All Mail").
    All,
    /// Gmail's "Starred": a view of flagged messages.
    Flagged,
    /// Gmail's "Important".
    Important,
}

impl FolderRole {
    pub fn as_str(self) -> &'static str {
        match self {
            FolderRole::Inbox => "inbox",
            FolderRole::Sent => "sent",
            FolderRole::Drafts => "drafts",
            FolderRole::Trash => "trash",
            FolderRole::Junk => "junk",
            FolderRole::Archive => "archive",
            FolderRole::All => "all",
            FolderRole::Flagged => "flagged",
            FolderRole::Important => "important",
        }
    }

    pub fn parse(s: &str) -> Option<FolderRole> {
        Some(match s {
            "inbox" => FolderRole::Inbox,
            "sent" => FolderRole::Sent,
            "drafts" => FolderRole::Drafts,
            "trash" => FolderRole::Trash,
            "junk" => FolderRole::Junk,
            "archive" => FolderRole::Archive,
            "all" => FolderRole::All,
            "flagged" => FolderRole::Flagged,
            "important" => FolderRole::Important,
            _ => return None,
        })
    }
}

/// A source folder as listed by the server.
/// The kinds of item a source reads or a target stores. Mail is all there
/// is today; contacts and calendar events are declared here so a backend
/// states what it carries instead of callers assuming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Mail,
    Contact,
    Event,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFolder {
    /// The name exactly as the server spells it on the wire (modified UTF-7),
    /// used for EXAMINE and as the folder's key in the checkpoint.
    pub wire_name: String,
    /// The decoded path, one element per hierarchy level.
    pub path: Vec<String>,
    pub role: Option<FolderRole>,
}

impl SourceFolder {
    /// The decoded path joined with `/`, for humans and for exclude globs.
    pub fn display(&self) -> String {
        self.path.join("/")
    }
}

/// Where a source folder goes, in terms every target understands: a path
/// under the target's own folder for a role (`anchor`), or from the root.
/// "[Gmail]/Sent Mail" becomes `{anchor: Sent, path: []}`, "INBOX/Lists/x"
/// becomes `{anchor: Inbox, path: ["Lists", "x"]}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetFolder {
    pub anchor: Option<FolderRole>,
    pub path: Vec<String>,
}

impl TargetFolder {
    pub fn display(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(role) = self.anchor {
            parts.push(role.as_str());
        }
        parts.extend(self.path.iter().map(String::as_str));
        parts.join("/")
    }
}

/// IMAP flags and keywords of a message, in IMAP spelling (`\Seen`, `$Label1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub Vec<String>);

impl Flags {
    pub fn from_wire(s: &str) -> Flags {
        Flags(s.split_whitespace().map(str::to_owned).collect())
    }

    pub fn to_wire(&self) -> String {
        self.0.join(" ")
    }

    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    pub fn seen(&self) -> bool {
        self.has("\\Seen")
    }

    pub fn flagged(&self) -> bool {
        self.has("\\Flagged")
    }
}

/// How much a scan reads of each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanDepth {
    /// What servers keep in their index: UID, flags, INTERNALDATE, size
    /// (and Gmail's message id). Cheap even for 500,000 messages.
    Index,
    /// Also the Message-ID and Subject headers, which most servers read
    /// from every message file.
    Headers,
}

/// The headers a report or a re-match needs of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    pub uid: u32,
    pub message_id: Option<String>,
    pub subject: Option<String>,
}

/// What the scan learns about one message without fetching its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    /// INTERNALDATE as unix seconds.
    pub internal_date: i64,
    pub size: u64,
    /// `None` when the message has none, or when the scan did not read
    /// headers ([`ScanDepth::Index`]).
    pub message_id: Option<String>,
    /// The decoded Subject (RFC 2047), shortened, for reports only.
    pub subject: Option<String>,
    /// Gmail's stable message id (X-GM-MSGID), the same in every label's
    /// folder; only from servers with X-GM-EXT-1.
    pub gm_msgid: Option<u64>,
}

/// What a source needs to open one mailbox, and nothing more: the address
/// that keys the mailbox everywhere, the login as the users file gives it
/// (admin forms such as `user*admin` included), its secret, and the
/// UserRoot column (a folder whose children are the mailbox's folders).
#[derive(Clone, Debug)]
pub struct SourceLogin {
    pub email: String,
    pub login: String,
    pub secret: crate::secret::Secret,
    pub user_root: Option<String>,
}

/// What a target needs to open one mailbox: the address, and the per-user
/// login and secret of the users file (TargetUserName, TargetPassword)
/// where the target's own settings do not supply them; the users file
/// line, to say where a missing one should go.
#[derive(Clone, Debug)]
pub struct TargetLogin {
    pub email: String,
    pub login: Option<String>,
    pub secret: Option<crate::secret::Secret>,
    pub users_file_line: u64,
}

/// Which source message an upload is: the mailbox, the folder's wire
/// name, its UIDVALIDITY and the UID. Its text form
/// (`user/folder/uidvalidity/uid`) is what targets stamp and name copies
/// by, so it must never change for the same message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageKey {
    pub user: String,
    pub folder: String,
    pub uid_validity: u32,
    pub uid: u32,
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.user, self.folder, self.uid_validity, self.uid)
    }
}

/// A message on its way to a target: the exact source bytes plus what the
/// target must keep besides them.
#[derive(Clone, Debug)]
pub struct Upload {
    pub raw: bytes::Bytes,
    pub flags: Flags,
    pub internal_date: i64,
    pub message_id: Option<String>,
    /// Stable identity of the source message, for targets that name or
    /// stamp items deterministically.
    pub key: MessageKey,
    /// Labels of a label-based source (Gmail) the message carries: Outlook
    /// categories on Graph, keywords on an IMAP target (see `labels`).
    pub labels: Vec<String>,
    /// RFC822.SIZE as the source scan reported it: what `verify` compares,
    /// which some servers (Exchange) report differently from `raw.len()`.
    pub source_size: u64,
}

/// Why a message in scope was not copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    TooLarge,
    OverItemCap,
    Excluded,
    TargetRefused,
    /// A label-based source (Gmail) shows the message in several folders;
    /// it is copied from one of them.
    Duplicate,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TooLarge => "too large",
            SkipReason::OverItemCap => "over item cap",
            SkipReason::Excluded => "excluded folder",
            SkipReason::TargetRefused => "refused by target",
            SkipReason::Duplicate => "copied from another folder",
        }
    }

    pub fn parse(s: &str) -> Option<SkipReason> {
        Some(match s {
            "too large" => SkipReason::TooLarge,
            "over item cap" => SkipReason::OverItemCap,
            "excluded folder" => SkipReason::Excluded,
            "refused by target" => SkipReason::TargetRefused,
            "copied from another folder" => SkipReason::Duplicate,
            _ => return None,
        })
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last resort when a server marks no roles: well-known names of
/// top-level folders, in the languages admins meet most.
pub fn role_from_name(path: &[String]) -> Option<FolderRole> {
    let last = path.last()?.to_lowercase();
    if path.len() == 1 && last == "inbox" {
        return Some(FolderRole::Inbox);
    }
    // Only top level (or directly under Gmail's "[Gmail]" parent).
    if path.len() > 2 || (path.len() == 2 && !path[0].starts_with('[')) {
        return None;
    }
    Some(match last.as_str() {
        "sent"
        | "sent items"
        | "sent messages"
        | "sent mail"
        | "gesendet"
        | "gesendete objekte"
        | "gesendete elemente"
        | "envoyés"
        | "éléments envoyés"
        | "enviados"
        | "inviata"
        | "posta inviata" => FolderRole::Sent,
        "drafts" | "draft" | "entwürfe" | "brouillons" | "borradores" | "bozze" => FolderRole::Drafts,
        "trash"
        | "deleted items"
        | "deleted messages"
        | "bin"
        | "papierkorb"
        | "gelöschte elemente"
        | "corbeille"
        | "éléments supprimés"
        | "papelera"
        | "cestino" => FolderRole::Trash,
        "junk" | "spam" | "junk e-mail" | "junk email" | "bulk mail" | "junk-e-mail" | "courrier indésirable" => {
            FolderRole::Junk
        }
        "archive" | "archives" | "archiv" => FolderRole::Archive,
        "all mail" | "alle nachrichten" => FolderRole::All,
        _ => return None,
    })
}
