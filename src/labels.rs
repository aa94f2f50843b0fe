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
//! - On a resync labels follow the source ([`rehome`], [`surplus`],
//!   [`marks_change`]): a label added or removed changes the copy's
//!   categories (categories mode) or adds or removes the copy in that
//!   label's folder (folders mode); a copy whose folder the message left is
//!   moved to where the rules want it now rather than copied again, and a
//!   copy is removed only while another copy of its message is in the
//!   target.

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

/// Copies of one message across folders, Gone ones included (a copy in
/// the target may still stand for a message gone from its folder).
fn all_groups(copies: &[Copy]) -> HashMap<&str, Vec<usize>> {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in copies.iter().enumerate() {
        groups.entry(c.key.as_str()).or_default().push(i);
    }
    groups
}

/// Where the copies made before go on a resync after labels changed, as
/// `(from, to)` pairs: the copy the target holds for `from`, whose message
/// left that folder (its label was removed, or it was taken out of the
/// Inbox), is moved to the folder of `to`, which the rules copy now and
/// which has no copy yet. So the message keeps its one copy (categories
/// mode: the main one follows the labels) or the copy moves from the label
/// removed to the label added (folders mode, archived mail to Archive),
/// with no upload and no second copy. `held[i]` says whether the target
/// holds a copy for `copies[i]`. Pairs in the same folder come first (a
/// label removed and added again: the copy is where it should be); the
/// rest go by [`main_rank`]. A copy without a counterpart is left to
/// [`surplus`].
pub fn rehome(folders: &[Folder], copies: &[Copy], held: &[bool], rules: &Rules) -> Vec<(usize, usize)> {
    let decisions = decide(folders, copies, rules);
    let rank = |i: usize| (main_rank(&folders[copies[i].folder]), copies[i].folder, i);
    let mut out = Vec::new();
    for members in all_groups(copies).values() {
        let mut from: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| held[i] && copies[i].state == State::Gone)
            .collect();
        if from.is_empty() {
            continue;
        }
        let mut to: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| matches!(decisions[i], Decision::Copy { .. }))
            .filter(|&i| matches!(copies[i].state, State::Pending | State::Failed | State::Skipped(_)))
            .collect();
        from.sort_by_key(|&i| rank(i));
        to.sort_by_key(|&i| rank(i));
        // The same folder first.
        from.retain(
            |&f| match to.iter().position(|&t| copies[t].folder == copies[f].folder) {
                Some(p) => {
                    out.push((f, to.remove(p)));
                    false
                }
                None => true,
            },
        );
        out.extend(from.into_iter().zip(to));
    }
    out.sort_unstable();
    out
}

/// The copies in the target the label rules no longer want, once another
/// copy of the same message is in the target where the rules want it (so
/// the message is still on the source, and never loses its last copy):
/// the copy of a folder the message left (a label removed), and in
/// folders mode the Archive copy of archived mail that has a label now.
/// In categories mode a copy made before in another mode stays, as the
/// copy rules say. `held` as for [`rehome`].
pub fn surplus(folders: &[Folder], copies: &[Copy], held: &[bool], rules: &Rules) -> Vec<usize> {
    let decisions = decide(folders, copies, rules);
    let mut out = Vec::new();
    for members in all_groups(copies).values() {
        let kept = members
            .iter()
            .any(|&i| held[i] && copies[i].state == State::Copied && matches!(decisions[i], Decision::Copy { .. }));
        if !kept {
            continue;
        }
        out.extend(members.iter().copied().filter(|&i| {
            held[i]
                && match copies[i].state {
                    State::Gone => true,
                    State::Copied => {
                        rules.mode == LabelMode::Folders
                            && decisions[i] == Decision::Duplicate
                            && is_view(folders[copies[i].folder].role)
                    }
                    _ => false,
                }
        }));
    }
    out.sort_unstable();
    out
}

/// Labels as the checkpoint records what was written to a copy: sorted as
/// [`decide`] gives them, one per line ("" for none).
pub fn labels_to_db(labels: &[String]) -> String {
    let mut v: Vec<&str> = labels.iter().map(String::as_str).collect();
    v.sort_by_key(|l| (l.to_lowercase(), l.to_string()));
    v.dedup();
    v.join("\n")
}

/// How a copy's marks stand against what the source says now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarksChange {
    /// The copy carries them: nothing to write.
    Written,
    /// Flags as written; which labels were written was not recorded (a copy
    /// made by a version that did not record them): taken as written now.
    LabelsUnknown,
    /// Flags or labels changed: the copy is to be given them.
    Changed,
}

/// Compares what was written to a copy (`written_flags` in IMAP spelling,
/// `written_labels` as [`labels_to_db`] spells them) with its marks now:
/// `flags` (IMAP spelling, `\Flagged` included for a starred message) and
/// `labels`. Flags compare as sets, whatever their case.
pub fn marks_change(
    written_flags: Option<&str>,
    written_labels: Option<&str>,
    flags: &str,
    labels: &[String],
) -> MarksChange {
    let set = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_ascii_lowercase).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if set(written_flags.unwrap_or("")) != set(flags) {
        return MarksChange::Changed;
    }
    match written_labels {
        None => MarksChange::LabelsUnknown,
        Some(w) if w == labels_to_db(labels) => MarksChange::Written,
        Some(_) => MarksChange::Changed,
    }
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

    fn at(folder: usize, key: &str, state: State) -> Copy {
        Copy {
            folder,
            key: key.into(),
            state,
        }
    }

    /// Whether the target holds a copy: every row recorded as copied, and
    /// the gone ones whose copy stayed.
    fn held(cs: &[Copy], gone_with_copy: &[usize]) -> Vec<bool> {
        (0..cs.len())
            .map(|i| cs[i].state == State::Copied || gone_with_copy.contains(&i))
            .collect()
    }

    const DUP: State = State::Skipped(crate::model::SkipReason::Duplicate);

    fn folders_mode() -> Rules {
        Rules {
            mode: LabelMode::Folders,
            ..Rules::default()
        }
    }

    #[test]
    fn categories_mode_moves_the_copy_when_its_main_folder_label_is_removed() {
        let fs = folders();
        // Main copy in Family; Family removed: the copy goes to work.
        let cs = vec![at(3, "a", State::Gone), at(2, "a", DUP), at(4, "a", DUP)];
        let h = held(&cs, &[0]);
        assert_eq!(rehome(&fs, &cs, &h, &Rules::default()), [(0, 1)]);
        assert!(surplus(&fs, &cs, &h, &Rules::default()).is_empty());
        // Taken out of the Inbox without a label (archived): to Archive.
        let cs = vec![at(0, "b", State::Gone), at(4, "b", DUP)];
        assert_eq!(rehome(&fs, &cs, &held(&cs, &[0]), &Rules::default()), [(0, 1)]);
        // A label removed from a message whose main copy stays: nothing
        // moves (its categories change, see `marks_change`).
        let cs = vec![at(0, "c", State::Copied), at(2, "c", State::Gone), at(4, "c", DUP)];
        let h = held(&cs, &[]);
        assert!(rehome(&fs, &cs, &h, &Rules::default()).is_empty());
        assert!(surplus(&fs, &cs, &h, &Rules::default()).is_empty());
        assert_eq!(decide(&fs, &cs, &Rules::default())[0], copied(&[], false));
    }

    #[test]
    fn a_message_left_only_in_trash_or_nowhere_keeps_its_copy() {
        let fs = folders();
        for mode in [Rules::default(), folders_mode()] {
            let cs = vec![at(0, "a", State::Gone), at(6, "a", State::Pending)];
            let h = held(&cs, &[0]);
            assert!(rehome(&fs, &cs, &h, &mode).is_empty(), "{mode:?}");
            assert!(surplus(&fs, &cs, &h, &mode).is_empty(), "{mode:?}");
            let cs = vec![at(2, "b", State::Gone), at(4, "b", State::Gone)];
            let h = held(&cs, &[0]);
            assert!(rehome(&fs, &cs, &h, &mode).is_empty(), "{mode:?}");
            assert!(surplus(&fs, &cs, &h, &mode).is_empty(), "{mode:?}");
        }
    }

    #[test]
    fn folders_mode_moves_a_removed_labels_copy_to_an_added_label() {
        let fs = folders();
        let rules = folders_mode();
        // In INBOX and work; work removed, Family added.
        let cs = vec![
            at(2, "a", State::Gone),
            at(3, "a", State::Pending),
            at(0, "a", State::Copied),
            at(4, "a", DUP),
        ];
        let h = held(&cs, &[0]);
        assert_eq!(rehome(&fs, &cs, &h, &rules), [(0, 1)]);
        // Only removed: the copy goes, the INBOX copy stays.
        let cs = vec![at(2, "b", State::Gone), at(0, "b", State::Copied), at(4, "b", DUP)];
        let h = held(&cs, &[0]);
        assert!(rehome(&fs, &cs, &h, &rules).is_empty());
        assert_eq!(surplus(&fs, &cs, &h, &rules), [0]);
        // The last label removed, the message archived: its copy to Archive.
        let cs = vec![at(2, "c", State::Gone), at(4, "c", State::Pending)];
        assert_eq!(rehome(&fs, &cs, &held(&cs, &[0]), &rules), [(0, 1)]);
        // Removed and added again (a new UID in the same folder): the copy
        // is already there, whatever else was added.
        let cs = vec![
            at(2, "d", State::Gone),
            at(3, "d", State::Pending),
            at(2, "d", State::Pending),
        ];
        assert_eq!(rehome(&fs, &cs, &held(&cs, &[0]), &rules), [(0, 2)]);
    }

    #[test]
    fn folders_mode_removes_the_archive_copy_once_the_label_copy_is_made() {
        let fs = folders();
        let rules = folders_mode();
        // Archived and copied to Archive; labelled work since.
        let cs = vec![at(4, "a", State::Copied), at(2, "a", State::Pending)];
        let h = held(&cs, &[]);
        assert!(rehome(&fs, &cs, &h, &rules).is_empty());
        assert!(
            surplus(&fs, &cs, &h, &rules).is_empty(),
            "not before the label's copy is in"
        );
        let cs = vec![at(4, "a", State::Copied), at(2, "a", State::Copied)];
        assert_eq!(surplus(&fs, &cs, &held(&cs, &[]), &rules), [0]);
        // Categories mode keeps it: the copy in the target stays the main one.
        let cs = vec![at(4, "a", State::Copied), at(2, "a", DUP)];
        let h = held(&cs, &[]);
        assert!(surplus(&fs, &cs, &h, &Rules::default()).is_empty());
        assert_eq!(decide(&fs, &cs, &Rules::default())[0], copied(&["work"], false));
    }

    #[test]
    fn copies_made_in_another_mode_stay_in_categories_mode() {
        let fs = folders();
        let cs = vec![at(0, "a", State::Copied), at(2, "a", State::Copied), at(4, "a", DUP)];
        let h = held(&cs, &[]);
        assert!(surplus(&fs, &cs, &h, &Rules::default()).is_empty());
        assert!(surplus(&fs, &cs, &h, &folders_mode()).is_empty());
        assert!(rehome(&fs, &cs, &h, &Rules::default()).is_empty());
    }

    #[test]
    fn marks_are_written_only_when_they_changed() {
        let work = vec!["work".to_owned(), "Family".to_owned()];
        assert_eq!(labels_to_db(&work), "Family\nwork");
        assert_eq!(labels_to_db(&[]), "");
        let written = Some("Family\nwork");
        assert_eq!(
            marks_change(Some("\\Seen $x"), written, "$X \\seen", &work),
            MarksChange::Written
        );
        assert_eq!(
            marks_change(Some("\\Seen"), written, "\\Seen \\Flagged", &work),
            MarksChange::Changed
        );
        assert_eq!(
            marks_change(Some("\\Seen"), written, "\\Seen", &work[..1]),
            MarksChange::Changed
        );
        assert_eq!(
            marks_change(Some("\\Seen"), Some(""), "\\Seen", &work),
            MarksChange::Changed
        );
        assert_eq!(
            marks_change(Some("\\Seen"), None, "\\Seen", &work),
            MarksChange::LabelsUnknown
        );
        assert_eq!(marks_change(None, Some(""), "", &[]), MarksChange::Written);
        assert_eq!(marks_change(None, None, "\\Seen", &[]), MarksChange::Changed);
    }

    #[test]
    fn labels_become_imap_keywords() {
        assert_eq!(keyword("Work"), "Work");
        assert_eq!(keyword("Projects 2024"), "Projects_2024");
        assert_eq!(keyword("Reisen/Übersee"), "Reisen/&ANw-bersee");
        assert_eq!(keyword("a(b)\"c\\"), "a_b__c_");
    }
}
