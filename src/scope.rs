//! The scope decision: of everything a mailbox holds, what a run copies and
//! what it leaves out, and why. `migrate` copies exactly this, `verify`
//! checks exactly this and `check` estimates with the same folder rules, so
//! the three can never disagree on what "everything" means.
//!
//! Pure (no I/O, no async): folders, the checkpoint's state of each
//! message and the configured rules go in; the decision comes out. It
//! composes three rules in a fixed order:
//! 1. `[limits] exclude`: folders left out by name ([`Rules::excludes`]);
//! 2. on a label-based source (Gmail, or any server with an All Mail
//!    folder), the label rules of [`labels`]: each message copied once (or
//!    once per label folder), Spam and Trash left out unless kept;
//! 3. the [`plan`]: the newest `max_items`, nothing over
//!    `max_message_bytes`, nothing already copied.

use std::collections::HashMap;

use crate::labels;
use crate::model::{FolderRole, SkipReason};
use crate::plan::{self, Candidate};

/// The configured rules, built once per run (see `build`).
#[derive(Clone, Debug)]
pub struct Rules {
    /// `[limits] exclude`, matched case-insensitively against a folder's
    /// display path ("Archive/2023").
    pub exclude: globset::GlobSet,
    pub labels: labels::Rules,
    pub limits: plan::Limits,
}

impl Rules {
    /// Whether `[limits] exclude` leaves this folder out.
    pub fn excludes(&self, folder_display: &str) -> bool {
        self.exclude.is_match(folder_display)
    }

    /// Of folders with these roles, the ones whose messages count towards
    /// the mailbox's size: on a label-based source a message shows in
    /// several folders, and only those the label rules copy from count.
    pub fn counted_folders(&self, roles: &[Option<FolderRole>], x_gm_ext: bool) -> Vec<bool> {
        if labels::label_based(roles.iter().copied(), x_gm_ext) {
            labels::counted_folders(roles, &self.labels)
        } else {
            vec![true; roles.len()]
        }
    }

    /// How many of `messages` in scope fall beyond `max_items`.
    pub fn over_item_cap(&self, messages: u64) -> u64 {
        messages.saturating_sub(self.limits.max_items)
    }
}

/// A source folder as the scope sees it (excluded folders are never
/// passed in).
#[derive(Clone, Debug)]
pub struct Folder {
    pub role: Option<FolderRole>,
    /// The decoded display path, the label name on a label-based source.
    pub name: String,
}

/// One message as the scope sees it.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    /// The planner's view: folder index, UID, date, size, checkpoint state.
    pub candidate: Candidate,
    /// What recognises the same message in several folders of a
    /// label-based source (see [`labels::match_key`]).
    pub gm_msgid: Option<u64>,
    pub message_id: Option<&'a str>,
}

/// The decision, as indexes into the message slice.
#[derive(Debug, Default)]
pub struct Scope {
    /// To copy, newest first, with the labels each carries and whether it
    /// must be flagged (starred on Gmail).
    pub copy: Vec<usize>,
    /// Left out by the label rules: the same message is copied from
    /// another folder ([`SkipReason::Duplicate`]) or its folder is left out
    /// ([`SkipReason::Excluded`]).
    pub by_labels: Vec<(usize, SkipReason)>,
    /// Left out by the plan (over the item cap, too large, refused by the
    /// target), including ones already recorded so callers can write them
    /// idempotently.
    pub by_plan: Vec<(usize, SkipReason)>,
    /// In scope and already in the target.
    pub already_copied: u64,
    /// Per message: the labels it carries and whether it is starred; empty
    /// and false off label-based sources.
    pub labels: Vec<(Vec<String>, bool)>,
}

impl Scope {
    /// Every message left out, whatever the rule, with its reason.
    pub fn skipped(&self) -> impl Iterator<Item = (usize, SkipReason)> + '_ {
        self.by_labels.iter().chain(&self.by_plan).copied()
    }

    /// How many were left out by the label rules for `reason`.
    pub fn label_skips(&self, reason: SkipReason) -> u64 {
        self.by_labels.iter().filter(|(_, r)| *r == reason).count() as u64
    }
}

/// Decides the scope of one mailbox. `label_based` says whether the label
/// rules apply (see [`labels::label_based`]).
pub fn decide(rules: &Rules, folders: &[Folder], label_based: bool, messages: &[Message<'_>]) -> Scope {
    let mut scope = Scope {
        labels: vec![(Vec::new(), false); messages.len()],
        ..Scope::default()
    };
    // Indexes of the messages the plan sees: all of them, or those the
    // label rules keep.
    let mut planned: Vec<usize> = Vec::with_capacity(messages.len());
    if label_based {
        let label_folders: Vec<labels::Folder> = folders
            .iter()
            .map(|f| labels::Folder {
                role: f.role,
                name: f.name.clone(),
            })
            .collect();
        let copies: Vec<labels::Copy> = messages
            .iter()
            .map(|m| labels::Copy {
                folder: m.candidate.folder,
                key: labels::match_key(m.gm_msgid, m.message_id, m.candidate.size, m.candidate.internal_date),
                state: m.candidate.state,
            })
            .collect();
        for (i, decision) in labels::decide(&label_folders, &copies, &rules.labels)
            .into_iter()
            .enumerate()
        {
            match decision {
                labels::Decision::Copy { labels, flagged } => {
                    scope.labels[i] = (labels, flagged);
                    planned.push(i);
                }
                labels::Decision::Duplicate => scope.by_labels.push((i, SkipReason::Duplicate)),
                labels::Decision::Excluded => scope.by_labels.push((i, SkipReason::Excluded)),
            }
        }
    } else {
        planned.extend(0..messages.len());
    }
    let candidates: Vec<Candidate> = planned.iter().map(|&i| messages[i].candidate).collect();
    let the_plan = plan::plan(&candidates, rules.limits);
    scope.copy = the_plan.copy.iter().map(|&p| planned[p]).collect();
    scope.by_plan = the_plan.skip.iter().map(|&(p, reason)| (planned[p], reason)).collect();
    scope.already_copied = the_plan.already_copied;
    scope
}

/// Which messages of `messages` are left out, keyed by (folder, UID), for
/// callers that look the decision up per message.
pub fn skipped_by_key(scope: &Scope, messages: &[Message<'_>]) -> HashMap<(usize, u32), SkipReason> {
    scope
        .skipped()
        .map(|(i, reason)| ((messages[i].candidate.folder, messages[i].candidate.uid), reason))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::State;

    fn rules(max_items: u64, max_message_bytes: u64, exclude: &[&str]) -> Rules {
        let mut globs = globset::GlobSetBuilder::new();
        for p in exclude {
            globs.add(globset::GlobBuilder::new(p).case_insensitive(true).build().unwrap());
        }
        Rules {
            exclude: globs.build().unwrap(),
            labels: labels::Rules::default(),
            limits: plan::Limits {
                max_items,
                max_message_bytes,
            },
        }
    }

    fn message(folder: usize, uid: u32, date: i64, size: u64, state: State, id: Option<&str>) -> Message<'_> {
        Message {
            candidate: Candidate {
                folder,
                uid,
                internal_date: date,
                size,
                state,
            },
            gm_msgid: None,
            message_id: id,
        }
    }

    fn folder(name: &str, role: Option<FolderRole>) -> Folder {
        Folder {
            role,
            name: name.into(),
        }
    }

    #[test]
    fn plain_sources_go_straight_to_the_plan() {
        let folders = [folder("INBOX", Some(FolderRole::Inbox)), folder("Work", None)];
        let messages = [
            message(0, 1, 100, 10, State::Pending, Some("<a@x>")),
            message(1, 1, 200, 10, State::Copied, Some("<a@x>")),
            message(1, 2, 300, 5_000, State::Pending, None),
            message(0, 2, 50, 10, State::Pending, None),
        ];
        let scope = decide(&rules(3, 1_000, &[]), &folders, false, &messages);
        // Newest first; the same Message-ID in two folders is two messages
        // off label-based sources.
        assert_eq!(scope.copy, [0]);
        assert_eq!(scope.by_plan, [(2, SkipReason::TooLarge), (3, SkipReason::OverItemCap)]);
        assert!(scope.by_labels.is_empty());
        assert_eq!(scope.already_copied, 1);
        assert_eq!(skipped_by_key(&scope, &messages)[&(0, 2)], SkipReason::OverItemCap);
    }

    #[test]
    fn label_rules_come_before_the_item_cap() {
        // A Gmail-like mailbox: INBOX, a label and All Mail hold the same
        // message; Spam holds another. Only one copy counts against the cap.
        let folders = [
            folder("INBOX", Some(FolderRole::Inbox)),
            folder("Travel", None),
            folder("[Gmail]/All Mail", Some(FolderRole::All)),
            folder("[Gmail]/Spam", Some(FolderRole::Junk)),
        ];
        let messages = [
            message(0, 1, 100, 10, State::Pending, Some("<m@x>")),
            message(1, 1, 100, 10, State::Pending, Some("<m@x>")),
            message(2, 1, 100, 10, State::Pending, Some("<m@x>")),
            message(3, 1, 90, 10, State::Pending, Some("<spam@x>")),
            message(2, 2, 80, 10, State::Pending, Some("<old@x>")),
        ];
        let scope = decide(&rules(1, 1_000, &[]), &folders, true, &messages);
        assert_eq!(scope.copy, [0]);
        assert_eq!(scope.labels[0], (vec!["Travel".to_owned()], false));
        assert_eq!(scope.label_skips(SkipReason::Duplicate), 2);
        assert_eq!(scope.label_skips(SkipReason::Excluded), 1);
        // The archived message is the second in scope: over the cap of one.
        assert_eq!(scope.by_plan, [(4, SkipReason::OverItemCap)]);
        assert_eq!(scope.skipped().count(), 4);
    }

    #[test]
    fn folder_rules_for_check() {
        let r = rules(10, 1_000, &["archive/*"]);
        assert!(r.excludes("Archive/2019"));
        assert!(!r.excludes("INBOX"));
        let roles = [
            Some(FolderRole::Inbox),
            None,
            Some(FolderRole::All),
            Some(FolderRole::Junk),
        ];
        assert_eq!(r.counted_folders(&roles, false), [false, false, true, false]);
        assert_eq!(r.counted_folders(&[Some(FolderRole::Inbox), None], false), [true, true]);
        assert_eq!(r.over_item_cap(12), 2);
        assert_eq!(r.over_item_cap(3), 0);
    }
}
