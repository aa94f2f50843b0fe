//! One message, many folders: the rules for label-based sources such as
//! Gmail, where a message shows up in every label's folder and again in
//! "[Gmail]/All Mail", and mail that was archived lives *only* in All Mail.
//! Copying folder by folder would duplicate labelled mail and skipping All
//! Mail would lose archived mail; these rules do neither.
//!
//! A pure function of the scan (which folders hold which message, and what
//! earlier runs did), so `run` and `verify` apply the very same decisions and
//! they are unit-tested here without a server:
//!
//! - A source is *label-based* when it offers X-GM-EXT-1 or has a folder with
//!   the `\All` role. Other servers keep today's folder-by-folder copy.
//! - Copies of one message are recognised by X-GM-MSGID where the server has
//!   it, else by Message-ID and size, else by INTERNALDATE and size.
//! - The `\All` folder is never copied as a folder: it contributes only the
//!   messages found in no other folder (archived mail), which go to Archive.
//! - `\Junk` and `\Trash` are left out by default; the views Starred
//!   (`\Flagged`, which becomes the message's flag) and Important are never
//!   copied as folders.
//! - `categories` mode: each message once, in its main folder (see
//!   [`main_rank`]), carrying every user label as a category (Graph) or
//!   keyword (IMAP). `folders` mode: one copy per label folder, like
//!   Microsoft's IMAP migration, but still never a second one from All Mail.
//! - Once a copy of a message is in the target, that copy stays its main one:
//!   labelling an archived message later does not copy it again.

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::FolderRole;
use crate::plan::State;

/// What to do with the labels of a label-based source (`[source]
/// gmail_labels`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelMode {
    /// One copy per message, labels as categories / keywords.
    #[default]
    Categories,
    /// One copy per label folder.
    Folders,
}

/// The configurable part of the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub mode: LabelMode,
    /// Copy the `\Junk` folder (Gmail's Spam) of a label-based source.
    pub keep_junk: bool,
    /// Copy the `\Trash` folder of a label-based source.
    pub keep_trash: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            mode: LabelMode::Categories,
            keep_junk: false,
            keep_trash: false,
        }
    }
}

/// A source folder as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    pub role: Option<FolderRole>,
    /// The decoded path joined with `/` ("Travel/Übersee"): the label name.
    pub name: String,
}

/// One copy of a message in one source folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Index into the folder slice.
    pub folder: usize,
    /// What recognises copies of the same message (see [`match_key`]).
    pub key: String,
    pub state: State,
}

/// What happens to one copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Copy it into the target folder its source folder maps to.
    Copy {
        /// User labels to carry as categories / keywords (empty in folders
        /// mode and on sources that are not label-based).
        labels: Vec<String>,
        /// The message is starred (in a `\Flagged` view): set `\Flagged`.
        flagged: bool,
    },
    /// The same message is copied from another folder.
    Duplicate,
    /// Its folder is left out (Spam or Trash of a label-based source).
    Excluded,
}

/// Whether the one-message-many-folders rules apply: Gmail (X-GM-EXT-1) or
/// any server with an `\All` folder.
pub fn label_based(roles: impl IntoIterator<Item = Option<FolderRole>>, x_gm_ext: bool) -> bool {
    x_gm_ext || roles.into_iter().any(|r| r == Some(FolderRole::All))
}

/// Whether copies of one message across folders are recognised by their
/// Message-ID: on a label-based source without Gmail's message ids. Only
/// then does the scan need every message's headers before copying.
pub fn matched_by_message_id(roles: impl IntoIterator<Item = Option<FolderRole>>, x_gm_ext: bool) -> bool {
    !x_gm_ext && label_based(roles, x_gm_ext)
}

/// The key that recognises copies of one message across folders: Gmail's
/// X-GM-MSGID when the server has it, else Message-ID and size, else
/// INTERNALDATE and size (a server keeps both across folders).
pub fn match_key(gm_msgid: Option<u64>, message_id: Option<&str>, size: u64, internal_date: i64) -> String {
    match (gm_msgid, message_id) {
        (Some(id), _) => format!("gm:{id}"),
        (None, Some(mid)) if !mid.is_empty() => format!("id:{mid}\u{0}{size}"),
        _ => format!("date:{internal_date}\u{0}{size}"),
    }
}

/// Whether a folder's copies are left out by the rules.
pub fn excluded(role: Option<FolderRole>, rules: &Rules) -> bool {
    match role {
        Some(FolderRole::Junk) => !rules.keep_junk,
        Some(FolderRole::Trash) => !rules.keep_trash,
        _ => false,
    }
}

/// Views over other folders: never copied as folders while the message is
/// anywhere else.
fn is_view(role: Option<FolderRole>) -> bool {
    matches!(
        role,
        Some(FolderRole::All | FolderRole::Flagged | FolderRole::Important)
    )
}

/// The order in which a message's folders compete to be its one main folder
/// in categories mode, lowest first: Inbox, then Sent, then Drafts, then an
/// Archive folder, then user labels by name (case-insensitively, so "Family"
/// before "work"), then the views (Starred, Important), and All Mail last
/// (the message is archived and goes to Archive).
pub fn main_rank(folder: &Folder) -> (u8, String) {
    let class = match folder.role {
        Some(FolderRole::Inbox) => 0,
        Some(FolderRole::Sent) => 1,
        Some(FolderRole::Drafts) => 2,
        Some(FolderRole::Archive) => 3,
        None => 4,
        Some(FolderRole::Junk | FolderRole::Trash) => 5,
        Some(FolderRole::Flagged | FolderRole::Important) => 6,
        Some(FolderRole::All) => 7,
    };
    (class, folder.name.to_lowercase())
}

/// Decides, for every copy, whether it is copied (and with which labels), a
/// duplicate of a copy made from another folder, or left out with its
/// folder. Only meaningful on label-based sources ([`label_based`]).
pub fn decide(folders: &[Folder], copies: &[Copy], rules: &Rules) -> Vec<Decision> {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in copies.iter().enumerate() {
        if c.state != State::Gone {
            groups.entry(c.key.as_str()).or_default().push(i);
        }
    }
    let mut out = vec![Decision::Duplicate; copies.len()];
    for (i, c) in copies.iter().enumerate() {
        if excluded(folders[c.folder].role, rules) {
            out[i] = Decision::Excluded;
        }
    }
    for members in groups.values() {
        let role = |i: usize| folders[copies[i].folder].role;
        // Found in some folder that is not a view (excluded ones count: mail
        // in Trash that a server also shows in All Mail stays in the trash).
        let elsewhere = members.iter().any(|&i| !is_view(role(i)));
        let in_all = members.iter().any(|&i| role(i) == Some(FolderRole::All));
        let eligible: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| !excluded(role(i), rules))
            .filter(|&i| match role(i) {
                // All Mail contributes only what no other folder holds.
                Some(FolderRole::All) => !elsewhere,
                // A view is copied only on a server without All Mail.
                Some(FolderRole::Flagged | FolderRole::Important) => !elsewhere && !in_all,
                _ => true,
            })
            .collect();
        let flagged = members.iter().any(|&i| role(i) == Some(FolderRole::Flagged));
        match rules.mode {
            LabelMode::Folders => {
                for &i in &eligible {
                    out[i] = Decision::Copy {
                        labels: Vec::new(),
                        flagged,
                    };
                }
            }
            LabelMode::Categories => {
                let mut labels: Vec<String> = members
                    .iter()
                    .filter(|&&i| role(i).is_none())
                    .map(|&i| folders[copies[i].folder].name.clone())
                    .collect();
                labels.sort_by_key(|l| l.to_lowercase());
                labels.dedup();
                // A copy already in the target (or on its way) stays the
                // main one, whatever the labels say now.
                let settled = members
                    .iter()
                    .copied()
                    .filter(|&i| matches!(copies[i].state, State::Copied | State::InFlight))
                    .min_by_key(|&i| main_rank(&folders[copies[i].folder]));
                let main = settled.or_else(|| {
                    eligible
                        .iter()
                        .copied()
                        .min_by_key(|&i| (main_rank(&folders[copies[i].folder]), copies[i].folder))
                });
                if let Some(m) = main {
                    out[m] = Decision::Copy { labels, flagged };
                }
            }
        }
    }
    out
}

/// Which folders' message counts add up to what a migrate copies from a
/// label-based source, for estimates made without matching messages
/// (`cutover check`): in categories mode All Mail alone (it holds every
/// message once, Spam and Trash aside), plus Spam and Trash when kept; in
/// folders mode every folder but All Mail and the views (archived mail,
/// only in All Mail, is then not counted). Returns one flag per folder.
pub fn counted_folders(roles: &[Option<FolderRole>], rules: &Rules) -> Vec<bool> {
    let has_all = roles.contains(&Some(FolderRole::All));
    roles
        .iter()
        .map(|&role| {
            if excluded(role, rules) {
                return false;
            }
            match (rules.mode, role) {
                (LabelMode::Categories, Some(FolderRole::All)) => true,
                (LabelMode::Categories, Some(FolderRole::Junk | FolderRole::Trash)) => true,
                (LabelMode::Categories, _) => !has_all && !is_view(role),
                (LabelMode::Folders, _) => !is_view(role),
            }
        })
        .collect()
}

/// A label as an IMAP keyword: keywords are atoms, so the name is written
/// in modified UTF-7 (as IMAP writes folder names) with every character an
/// atom may not hold replaced by `_` ("Projects 2024" → "Projects_2024").
pub fn keyword(label: &str) -> String {
    crate::utf7::encode(label)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"(){%*\"\\]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folders() -> Vec<Folder> {
        let f = |role, name: &str| Folder {
            role,
            name: name.into(),
        };
        vec![
            f(Some(FolderRole::Inbox), "INBOX"),                  // 0
            f(Some(FolderRole::Sent), "[Gmail]/Gesendet"),        // 1
            f(None, "work"),                                      // 2
            f(None, "Family"),                                    // 3
            f(Some(FolderRole::All), "[Gmail]/Alle Nachrichten"), // 4
            f(Some(FolderRole::Junk), "[Gmail]/Spam"),            // 5
            f(Some(FolderRole::Trash), "[Gmail]/Papierkorb"),     // 6
            f(Some(FolderRole::Flagged), "[Gmail]/Starred"),      // 7
        ]
    }

    fn copy(folder: usize, key: &str) -> Copy {
        Copy {
            folder,
            key: key.into(),
            state: State::Pending,
        }
    }

    fn copied(labels: &[&str], flagged: bool) -> Decision {
        Decision::Copy {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            flagged,
        }
    }

    #[test]
    fn detection_by_capability_or_all_folder() {
        assert!(label_based([None, Some(FolderRole::All)], false));
        assert!(label_based([None], true));
        assert!(!label_based(
            [Some(FolderRole::Inbox), Some(FolderRole::Archive)],
            false
        ));
    }

    #[test]
    fn match_keys_prefer_gmail_ids_then_message_id_and_size() {
        assert_eq!(
            match_key(Some(1278455344230334865), Some("<a@b>"), 10, 5),
            "gm:1278455344230334865"
        );
        assert_ne!(
            match_key(None, Some("<a@b>"), 10, 5),
            match_key(None, Some("<a@b>"), 11, 5)
        );
        assert_eq!(
            match_key(None, Some("<a@b>"), 10, 5),
            match_key(None, Some("<a@b>"), 10, 6)
        );
        assert_eq!(match_key(None, None, 10, 5), match_key(None, Some(""), 10, 5));
    }

    #[test]
    fn categories_mode_copies_each_message_once_in_its_main_folder() {
        let fs = folders();
        let cs = vec![
            // a: Inbox + two labels + All Mail → Inbox, both labels.
            copy(2, "a"),
            copy(0, "a"),
            copy(3, "a"),
            copy(4, "a"),
            // b: labels only → the label first by name ("Family" < "work").
            copy(2, "b"),
            copy(3, "b"),
            copy(4, "b"),
            // c: archived (All Mail only) → copied from All Mail.
            copy(4, "c"),
            // d: Sent + label.
            copy(2, "d"),
            copy(1, "d"),
            copy(4, "d"),
        ];
        let d = decide(&fs, &cs, &Rules::default());
        assert_eq!(d[0], Decision::Duplicate);
        assert_eq!(d[1], copied(&["Family", "work"], false));
        assert_eq!(d[2], Decision::Duplicate);
        assert_eq!(d[3], Decision::Duplicate);
        assert_eq!(d[4], Decision::Duplicate);
        assert_eq!(d[5], copied(&["Family", "work"], false));
        assert_eq!(d[6], Decision::Duplicate);
        assert_eq!(d[7], copied(&[], false));
        assert_eq!(d[8], Decision::Duplicate);
        assert_eq!(d[9], copied(&["work"], false));
        assert_eq!(d[10], Decision::Duplicate);
    }

    #[test]
    fn spam_and_trash_are_left_out_unless_kept() {
        let fs = folders();
        // Spam-only, Trash-only, and a trashed message a server also lists
        // in All Mail (Gmail does not, other servers may).
        let cs = vec![copy(5, "s"), copy(6, "t"), copy(6, "u"), copy(4, "u")];
        let d = decide(&fs, &cs, &Rules::default());
        assert_eq!(
            d,
            vec![
                Decision::Excluded,
                Decision::Excluded,
                Decision::Excluded,
                Decision::Duplicate
            ]
        );
        let keep = Rules {
            keep_junk: true,
            keep_trash: true,
            ..Rules::default()
        };
        let d = decide(&fs, &cs, &keep);
        assert_eq!(d[0], copied(&[], false));
        assert_eq!(d[1], copied(&[], false));
        assert_eq!(d[2], copied(&[], false));
        assert_eq!(d[3], Decision::Duplicate);
    }

    #[test]
    fn folders_mode_copies_per_label_but_never_from_all_mail() {
        let fs = folders();
        let cs = vec![
            copy(0, "a"),
            copy(2, "a"),
            copy(3, "a"),
            copy(4, "a"),
            copy(4, "c"),
            copy(5, "s"),
        ];
        let rules = Rules {
            mode: LabelMode::Folders,
            ..Rules::default()
        };
        let d = decide(&fs, &cs, &rules);
        assert_eq!(
            d,
            vec![
                copied(&[], false),
                copied(&[], false),
                copied(&[], false),
                Decision::Duplicate,
                copied(&[], false),
                Decision::Excluded,
            ]
        );
    }

    #[test]
    fn starred_becomes_the_flag_not_a_folder() {
        let fs = folders();
        let cs = vec![copy(7, "a"), copy(2, "a"), copy(4, "a"), copy(7, "b"), copy(4, "b")];
        let d = decide(&fs, &cs, &Rules::default());
        assert_eq!(d[0], Decision::Duplicate);
        assert_eq!(d[1], copied(&["work"], true));
        assert_eq!(d[2], Decision::Duplicate);
        // Starred and archived: to Archive, flagged.
        assert_eq!(d[3], Decision::Duplicate);
        assert_eq!(d[4], copied(&[], true));
    }

    #[test]
    fn a_copy_already_in_the_target_stays_the_main_one() {
        let fs = folders();
        // Archived and copied to Archive by an earlier run, labelled since.
        let mut cs = vec![copy(4, "a"), copy(2, "a")];
        cs[0].state = State::Copied;
        let d = decide(&fs, &cs, &Rules::default());
        assert_eq!(d[0], copied(&["work"], false));
        assert_eq!(d[1], Decision::Duplicate);
    }

    #[test]
    fn estimates_count_all_mail_once_or_every_label_folder() {
        let roles = [
            Some(FolderRole::Inbox),
            None,
            Some(FolderRole::All),
            Some(FolderRole::Junk),
            Some(FolderRole::Flagged),
        ];
        assert_eq!(
            counted_folders(&roles, &Rules::default()),
            [false, false, true, false, false]
        );
        let keep_junk = Rules {
            keep_junk: true,
            ..Rules::default()
        };
        assert_eq!(counted_folders(&roles, &keep_junk), [false, false, true, true, false]);
        let folders = Rules {
            mode: LabelMode::Folders,
            ..Rules::default()
        };
        assert_eq!(counted_folders(&roles, &folders), [true, true, false, false, false]);
        // Gmail without an All Mail folder listed: every real folder.
        assert_eq!(
            counted_folders(&[Some(FolderRole::Inbox), None], &Rules::default()),
            [true, true]
        );
    }

    #[test]
    fn labels_become_imap_keywords() {
        assert_eq!(keyword("Work"), "Work");
        assert_eq!(keyword("Projects 2024"), "Projects_2024");
        assert_eq!(keyword("Reisen/Übersee"), "Reisen/&ANw-bersee");
        assert_eq!(keyword("a(b)\"c\\"), "a_b__c_");
    }
}
