//! The transform stage between fetch and upload, and the pure translations
//! between the source's and the targets' vocabulary: where a source folder
//! goes, which flags and labels a message carries, and how each kind of
//! target spells them (IMAP keywords, Maildir info letters, Outlook read
//! state, follow-up flag and categories). No I/O, no async: targets apply
//! the result in their own protocol.

pub mod contact;
pub mod event;

use bytes::Bytes;

use crate::model::{Flags, FolderRole, Headers, MessageKey, SourceFolder, TargetFolder, Upload};

/// What the source says about a message besides its bytes: its flags as
/// the scan saw them, whether a label-based source shows it starred, and
/// the labels it carries.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    pub flags: Flags,
    pub starred: bool,
    pub labels: Vec<String>,
}

/// Builds the upload of one fetched message: the exact source bytes, the
/// flags to set (`\Flagged` added for a starred message), the labels, and
/// the Message-ID read once from its header block (what re-matches the
/// copy after a UIDVALIDITY change).
pub fn upload(raw: Bytes, key: MessageKey, marks: Marks, internal_date: i64, source_size: u64) -> Upload {
    let message_id = crate::headers::message_id(crate::headers::block(&raw));
    let mut flags = marks.flags;
    if marks.starred && !flags.flagged() {
        flags.0.push("\\Flagged".to_owned());
    }
    Upload {
        raw,
        flags,
        internal_date,
        message_id,
        key,
        labels: marks.labels,
        source_size,
    }
}

/// What a report names a message by when it could not be copied: its
/// Message-ID and decoded Subject, from the body that was fetched.
pub fn report_headers(upload: &Upload, uid: u32) -> Headers {
    Headers {
        uid,
        message_id: upload.message_id.clone(),
        subject: crate::headers::subject(crate::headers::block(&upload.raw)),
    }
}

/// Maps each source folder to its target folder. A folder with a role maps
/// to the target's folder for that role whatever it is called; a folder
/// below a role folder keeps its place below the target's one.
pub fn target_folder(folder: &SourceFolder, all: &[SourceFolder]) -> TargetFolder {
    // What is copied from All Mail is archived mail (see `labels`).
    if folder.role == Some(FolderRole::All) {
        return TargetFolder {
            anchor: Some(FolderRole::Archive),
            path: Vec::new(),
        };
    }
    if let Some(role) = folder.role.filter(|r| maps_to_target_role(*r)) {
        return TargetFolder {
            anchor: Some(role),
            path: Vec::new(),
        };
    }
    // The deepest ancestor with a role anchors the rest of the path.
    for depth in (1..folder.path.len()).rev() {
        let prefix = &folder.path[..depth];
        if let Some(role) = all
            .iter()
            .find(|f| f.path == prefix)
            .and_then(|f| f.role)
            .filter(|r| maps_to_target_role(*r))
        {
            return TargetFolder {
                anchor: Some(role),
                path: folder.path[depth..].to_vec(),
            };
        }
    }
    if folder.path.first().is_some_and(|p| p.eq_ignore_ascii_case("INBOX")) {
        return TargetFolder {
            anchor: Some(FolderRole::Inbox),
            path: folder.path[1..].to_vec(),
        };
    }
    TargetFolder {
        anchor: None,
        path: folder.path.clone(),
    }
}

/// Roles every target has a folder for. Gmail's Starred and Important are
/// views: they stay ordinary folders here (the label rules decide whether
/// they are copied at all). All Mail goes to Archive, above.
fn maps_to_target_role(role: FolderRole) -> bool {
    matches!(
        role,
        FolderRole::Inbox
            | FolderRole::Sent
            | FolderRole::Drafts
            | FolderRole::Trash
            | FolderRole::Junk
            | FolderRole::Archive
    )
}

/// The flags an IMAP APPEND carries: everything the source had except
/// `\Recent`, which only a server may set, plus the message's labels (from a
/// label-based source) as keywords.
pub fn append_flags(flags: &Flags, labels: &[String]) -> String {
    let mut out: Vec<String> = flags
        .0
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .cloned()
        .collect();
    for label in labels {
        let k = crate::labels::keyword(label);
        if !out.iter().any(|f| f.eq_ignore_ascii_case(&k)) {
            out.push(k);
        }
    }
    out.join(" ")
}

/// IMAP keywords that become Outlook categories: user keywords, not system
/// flags (`\Seen`) nor the `$`-prefixed conventions (`$Forwarded`,
/// `$MDNSent`, `$Label1`), which are client state rather than labels.
pub fn outlook_categories(flags: &Flags) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in &flags.0 {
        if f.is_empty() || f.starts_with('$') || f.starts_with('\\') {
            continue;
        }
        if !out.iter().any(|c| c.eq_ignore_ascii_case(f)) {
            out.push(f.clone());
        }
    }
    out
}

/// The Graph follow-up flag status for IMAP `\Flagged`.
pub fn outlook_flag_status(flags: &Flags) -> &'static str {
    if flags.flagged() { "flagged" } else { "notFlagged" }
}

/// A message's flags with its labels (from a label-based source such as
/// Gmail) added as keywords, which become Outlook categories.
pub fn flags_with_labels(flags: &Flags, labels: &[String]) -> Flags {
    let mut flags = flags.clone();
    for label in labels {
        if !flags.has(label) {
            flags.0.push(label.clone());
        }
    }
    flags
}

/// Maildir info letters (sorted, as the spec requires) for system flags.
pub fn maildir_flags(flags: &Flags) -> String {
    let mut letters: Vec<char> = Vec::new();
    for (flag, letter) in [
        ("\\Draft", 'D'),
        ("\\Flagged", 'F'),
        ("\\Answered", 'R'),
        ("\\Seen", 'S'),
        ("\\Deleted", 'T'),
    ] {
        if flags.has(flag) {
            letters.push(letter);
        }
    }
    letters.into_iter().collect()
}

/// Makes a path element safe for a target whose hierarchy separator it
/// contains ("a/b" on a "/" server): the separator becomes "_", so the
/// folder is kept rather than split or dropped.
pub fn escape_separator(element: &str, separator: char) -> String {
    element.replace(separator, "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &str, role: Option<FolderRole>) -> SourceFolder {
        SourceFolder {
            wire_name: path.into(),
            path: path.split('/').map(str::to_owned).collect(),
            role,
        }
    }

    #[test]
    fn roles_map_whatever_the_name() {
        let all = vec![
            folder("INBOX", Some(FolderRole::Inbox)),
            folder("[Gmail]/Gesendet", Some(FolderRole::Sent)),
            folder("Sent/2019", None),
            folder("INBOX/Lists", None),
            folder("Projects/Écoles", None),
            folder("[Gmail]/Alle Nachrichten", Some(FolderRole::All)),
        ];
        let t: Vec<TargetFolder> = all.iter().map(|f| target_folder(f, &all)).collect();
        assert_eq!(
            t[0],
            TargetFolder {
                anchor: Some(FolderRole::Inbox),
                path: vec![]
            }
        );
        assert_eq!(
            t[1],
            TargetFolder {
                anchor: Some(FolderRole::Sent),
                path: vec![]
            }
        );
        // "Sent" itself is not a role folder in this list, so no anchor.
        assert_eq!(
            t[2],
            TargetFolder {
                anchor: None,
                path: vec!["Sent".into(), "2019".into()]
            }
        );
        assert_eq!(
            t[3],
            TargetFolder {
                anchor: Some(FolderRole::Inbox),
                path: vec!["Lists".into()]
            }
        );
        assert_eq!(
            t[4],
            TargetFolder {
                anchor: None,
                path: vec!["Projects".into(), "Écoles".into()]
            }
        );
        assert_eq!(
            t[5],
            TargetFolder {
                anchor: Some(FolderRole::Archive),
                path: vec![]
            }
        );
    }

    #[test]
    fn children_of_role_folders_stay_below_them() {
        let all = vec![folder("Sent", Some(FolderRole::Sent)), folder("Sent/2019", None)];
        assert_eq!(
            target_folder(&all[1], &all),
            TargetFolder {
                anchor: Some(FolderRole::Sent),
                path: vec!["2019".into()]
            }
        );
    }

    #[test]
    fn flags() {
        let f = Flags::from_wire("\\Seen \\Recent \\Flagged $Label1");
        assert_eq!(append_flags(&f, &[]), "\\Seen \\Flagged $Label1");
        assert_eq!(
            append_flags(&f, &["Work".into(), "Projects 2024".into()]),
            "\\Seen \\Flagged $Label1 Work Projects_2024"
        );
        assert_eq!(
            maildir_flags(&Flags::from_wire("\\Seen \\Answered \\Flagged \\Draft")),
            "DFRS"
        );
        assert_eq!(escape_separator("a/b", '/'), "a_b");
    }
}
