//! `cutover verify`: proof, before the old server is switched off, that
//! the target holds everything it should. For every user and folder it
//! lists the source (a fresh metadata scan, never the checkpoint's memory of
//! it) and the target (read-only, [`TargetSession::inventory`]) and compares
//! counts, Message-ID sets and sizes. Then, unless `--quick`, it reads every
//! message found on both sides and compares content
//! ([`TargetSession::compare_content`]): bytes on IMAP and Maildir; on
//! Graph the body's text and every attachment's name, size and hash, since
//! a listing there shows only what cutover stamped on the copy and would
//! not notice a body cut short or an attachment gone.
//!
//! What "should" means is what `migrate` would copy: the plan's rules are
//! applied to the fresh scan with the checkpoint's states, so messages
//! skipped as too large, over the item cap or refused by the target, and
//! folders excluded by `[limits] exclude`, are out of scope and never
//! reported missing; so are, on a label-based source such as Gmail, the
//! copies of a message that `labels` has copied from another folder, and
//! Spam and Trash unless kept. Everything else the target lacks is missing, with what
//! the checkpoint knows about it (failed and why, not copied yet, arrived
//! after the last run). Messages the target has and the source has not are
//! listed as extra (mail delivered to the target after the MX switch, or a
//! duplicate) but do not fail the verification.
//!
//! Source folders that map to the same target folder (two folders with the
//! Sent role, say) are compared together against it.
//!
//! With `[contacts_calendars]`, each user's calendars and address books
//! are compared too, in the same run and report (`pim.rs`): every source
//! item once in its target collection, with the same subject, times,
//! occurrences and attendees, or name, e-mail addresses and phone numbers.
//! A missing, differing or duplicated contact or event fails the
//! verification like a missing message.
//!
//! Every copy found is also compared with its source message's flags, those
//! the target keeps ([`crate::target::Capabilities::listed_flags`]: read
//! and flagged on Graph, answered too on IMAP and Maildir), as `migrate`
//! wrote them (a message starred on a label-based source is flagged). A
//! difference fails the verification. The source wins while migrating:
//! verify marks such a copy in the state DB (when it records a copy as
//! copied) and the next `migrate` writes the source's flags to it again,
//! also when it was someone in the target who changed them (on a
//! label-based source together with the copy's star and labels).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::build::{self, StartError};
use crate::checkpoint::{Checkpoint, FolderRow, format_time};
use crate::error::Error;
use crate::labels;
use crate::model::{Flags, MessageMeta, SkipReason, SourceFolder, TargetFolder};
use crate::plan::{Candidate, State};
use crate::progress::human_bytes;
use crate::roster::UserJob;
use crate::scope;
use crate::settings::Settings;
use crate::source::Source;
use crate::target::{Inventoried, Target, TargetSession};
use crate::transform;

mod pim;
mod render;
pub use pim::{FieldDifference, Finding, PimCollectionVerify, PimFinding, PimVerify};
pub use render::render_table;

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub users: Vec<UserVerify>,
    pub totals: VerifyTotals,
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyTotals {
    pub users: u64,
    /// Users whose target holds everything in scope.
    pub complete: u64,
    /// Users with at least one message missing in the target.
    pub incomplete: u64,
    /// Users that could not be compared (login refused, ...).
    pub errors: u64,
    pub missing: u64,
    pub extra: u64,
    pub duplicates: u64,
    /// Copies whose flags are not the source's.
    pub flags_differ: u64,
    /// Contacts and events the target lacks.
    pub pim_missing: u64,
    /// Contacts and events whose copy differs in a compared field.
    pub pim_differ: u64,
    /// Extra copies of contacts and events.
    pub pim_duplicates: u64,
    /// Contacts and events in the target only.
    pub pim_extra: u64,
    /// Contacts and events recorded as failed when copied.
    pub pim_failed_at_copy: u64,
}

impl VerifyReport {
    /// True when every user was compared and nothing in scope is missing,
    /// duplicated or flagged otherwise than in the source.
    pub fn complete(&self) -> bool {
        self.totals.incomplete == 0 && self.totals.errors == 0
    }
}

#[derive(Debug, Default, Serialize)]
pub struct UserVerify {
    pub email: String,
    /// Compared, and nothing in scope is missing, duplicated or flagged
    /// otherwise than in the source.
    pub complete: bool,
    /// Why this user could not be compared.
    pub error: Option<String>,
    pub source_messages: u64,
    /// Source messages the rules leave out (skipped or in excluded folders).
    pub out_of_scope: u64,
    pub in_scope: u64,
    pub target_messages: u64,
    pub missing_count: u64,
    pub extra_count: u64,
    /// Extra copies that duplicate a message copied into another folder.
    pub duplicate_count: u64,
    /// Copies found whose flags are not the source message's.
    pub flags_differ_count: u64,
    pub folders: Vec<FolderVerify>,
    pub missing: Vec<MissingItem>,
    pub extra: Vec<ExtraItem>,
    pub flags_differ: Vec<FlagsItem>,
    /// Contacts and calendars (`[contacts_calendars]`), compared; absent
    /// when the config copies none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pim: Option<PimVerify>,
    /// Messages the checkpoint records as copied that the target lacks or
    /// holds altered: (folder row, UID, why), recorded as failed so the
    /// next migrate looks for them and copies them again.
    #[serde(skip)]
    not_copied: Vec<(i64, u32, String)>,
    /// Copies the checkpoint records as copied whose flags differ: (folder
    /// row, UID), marked so the next migrate writes the source's flags.
    #[serde(skip)]
    flags_to_rewrite: Vec<(i64, u32)>,
}

/// One target folder and the source folder(s) that go into it.
#[derive(Debug, Default, Serialize)]
pub struct FolderVerify {
    /// Source folder paths, "/" between levels.
    pub source: Vec<String>,
    /// Where they go in the target (its folder reference when a run stored
    /// one, else the role/path it maps to).
    pub target: String,
    /// Left out by `[limits] exclude`: not compared.
    pub excluded: bool,
    pub source_messages: u64,
    pub source_bytes: u64,
    /// Skipped by the plan's rules, by reason.
    pub skipped: BTreeMap<String, u64>,
    pub in_scope: u64,
    pub in_scope_bytes: u64,
    pub target_messages: u64,
    pub target_bytes: u64,
    /// In scope and found in the target.
    pub present: u64,
    /// Found by Message-ID, but with another size: counted missing, since
    /// the copy may be truncated or altered (cutover's own Graph copies
    /// carry the source's size, so they match exactly).
    pub size_differs: u64,
    /// Found with the same Message-ID and size, but its content is not the
    /// source's (a body cut short, an attachment missing or changed):
    /// counted missing. Zero with `--quick`, which does not read content.
    pub content_differs: u64,
    /// Present, but flagged otherwise than the source message (read,
    /// flagged, answered, where the target keeps them).
    pub flags_differ: u64,
    pub missing: u64,
    pub extra: u64,
}

#[derive(Debug, Serialize)]
pub struct MissingItem {
    pub folder: String,
    pub uid: u32,
    pub date: String,
    pub size: u64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// What the checkpoint knows about it, and what to do.
    pub status: String,
}

impl MissingItem {
    fn of(s: &Scanned, m: &MessageMeta, status: String) -> MissingItem {
        MissingItem {
            folder: s.folder.display(),
            uid: m.uid,
            date: format_time(m.internal_date),
            size: m.size,
            message_id: m.message_id.clone(),
            subject: m.subject.clone(),
            status,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ExtraItem {
    pub folder: String,
    pub message_id: Option<String>,
    pub size: u64,
    /// The source holds this message (same Message-ID and size) in another
    /// folder only, where its copy was found too: the target holds it
    /// twice (a move copied instead of moved, a folder copied again under
    /// a new name). Counts against completeness.
    pub duplicate_of: Option<String>,
}

/// A copy found in the target whose flags are not its source message's.
#[derive(Debug, Serialize)]
pub struct FlagsItem {
    /// The source folder.
    pub folder: String,
    pub uid: u32,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The source message's state in the flags compared, as the copy should
    /// carry it: "read+flagged", "unread".
    pub source: String,
    /// The copy's.
    pub target: String,
    /// The flags set on one side only, IMAP spelling.
    pub differ: Vec<String>,
    /// Whether the next migrate writes them, and what to do.
    pub status: String,
}

/// How deep `verify` looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Listings only: counts, Message-IDs and sizes.
    Quick,
    /// Listings, then every message's content on both sides.
    Content,
}

/// Everything a per-user comparison shares.
struct Ctx {
    source: Source,
    target: Arc<dyn Target>,
    /// Contacts and calendars, when the config copies them.
    pim: Option<build::Pim>,
    scope: scope::Rules,
    db: Option<Mutex<Checkpoint>>,
    /// The run lock, when no migrate holds it: verify may then record what
    /// it found missing, for the next migrate to copy again.
    can_record: bool,
    depth: Depth,
    /// Source bytes read at once while comparing content.
    read_bytes: u64,
}

/// Compares source and target for every user; `Err` only when it cannot
/// start at all (a user that cannot be compared is reported in its entry).
pub async fn verify(settings: Settings, users: Vec<UserJob>, depth: Depth) -> Result<VerifyReport, StartError> {
    // Built as `migrate` builds them: a Graph target is one client for
    // mail, contacts and calendars, paced as one.
    let build::Migration {
        source,
        target,
        scope,
        pim,
        ..
    } = build::migration(&settings, users.len())?;
    if !target.capabilities().list {
        return Err(StartError(format!(
            "{} cannot list a folder's messages, so cutover verify cannot compare it with the source",
            target.describe()
        )));
    }
    // Without a state DB nothing was migrated yet; the rules still apply.
    let db = if Path::new(&settings.state_path).is_file() {
        Some(Mutex::new(Checkpoint::open_existing(&settings.state_path)?))
    } else {
        None
    };
    let parallel = settings.run.parallel_users;
    // Held until verify ends, so no migrate starts meanwhile.
    let lock = db
        .as_ref()
        .and_then(|_| crate::checkpoint::lock(&settings.state_path).ok());
    let ctx = Arc::new(Ctx {
        source,
        target,
        pim,
        scope,
        db,
        can_record: lock.is_some(),
        depth,
        read_bytes: settings.run.max_in_flight_bytes.max(1 << 20),
    });
    let failed = |email, message| UserVerify {
        email,
        error: Some(message),
        ..Default::default()
    };
    let results = build::each_user(
        users,
        parallel,
        |user| {
            let ctx = ctx.clone();
            async move {
                let email = user.email.clone();
                verify_user(&ctx, &user)
                    .await
                    .unwrap_or_else(|e| failed(email, e.message))
            }
        },
        failed,
    )
    .await;
    let mut report = VerifyReport::default();
    for u in results {
        report.totals.users += 1;
        if u.error.is_some() {
            report.totals.errors += 1;
        } else if !u.complete {
            report.totals.incomplete += 1;
        } else {
            report.totals.complete += 1;
        }
        report.totals.missing += u.missing_count;
        report.totals.extra += u.extra_count;
        report.totals.duplicates += u.duplicate_count;
        report.totals.flags_differ += u.flags_differ_count;
        if let Some(p) = &u.pim {
            report.totals.pim_missing += p.missing;
            report.totals.pim_differ += p.differ;
            report.totals.pim_duplicates += p.duplicates;
            report.totals.pim_extra += p.extra;
            report.totals.pim_failed_at_copy += p.failed_at_copy;
        }
        report.users.push(u);
    }
    drop(lock);
    Ok(report)
}

/// What the checkpoint knows about one user.
#[derive(Default)]
struct Known {
    folders: HashMap<String, FolderRow>,
    states: HashMap<(i64, u32), State>,
    reasons: HashMap<(String, u32), String>,
}

fn load_known(ctx: &Ctx, email: &str) -> Result<Known, Error> {
    let Some(db) = &ctx.db else {
        return Ok(Known::default());
    };
    tokio::task::block_in_place(|| {
        let cp = db.lock().unwrap_or_else(|p| p.into_inner());
        let e = |e: crate::checkpoint::CheckpointError| Error::fatal(e.0);
        let folders = cp.folders(email).map_err(e)?;
        let states = cp
            .messages(email, true)
            .map_err(e)?
            .into_iter()
            .map(|m| ((m.folder_id, m.uid), m.state))
            .collect();
        let reasons = cp
            .problem_items(email)
            .map_err(e)?
            .into_iter()
            .map(|p| ((p.folder, p.uid), p.reason))
            .collect();
        Ok(Known {
            folders: folders.into_iter().map(|f| (f.wire_name.clone(), f)).collect(),
            states,
            reasons,
        })
    })
}

/// One scanned source folder.
struct Scanned {
    folder: SourceFolder,
    uid_validity: u32,
    metas: Vec<MessageMeta>,
}

async fn verify_user(ctx: &Ctx, user: &UserJob) -> Result<UserVerify, Error> {
    let known = load_known(ctx, &user.email)?;
    let mut session = ctx
        .source
        .open(&user.source_login())
        .await
        .map_err(|e| e.context("source"))?;
    let listed = session.folders().await?;
    let mut out = UserVerify {
        email: user.email.clone(),
        ..Default::default()
    };
    let mut scanned = Vec::new();
    for folder in listed {
        let state = session.examine(&folder.wire_name).await?;
        if ctx.scope.excludes(&folder.display()) {
            out.source_messages += u64::from(state.exists);
            out.out_of_scope += u64::from(state.exists);
            out.folders.push(FolderVerify {
                source: vec![folder.display()],
                target: String::new(),
                excluded: true,
                source_messages: u64::from(state.exists),
                ..Default::default()
            });
            continue;
        }
        let metas = if state.exists == 0 {
            Vec::new()
        } else {
            session.scan(1, crate::model::ScanDepth::Headers).await?
        };
        scanned.push(Scanned {
            folder,
            uid_validity: state.uid_validity,
            metas,
        });
    }
    let gmail_ext = session.has_gmail_extensions();

    // The scope over the fresh scan, with the checkpoint's states: what a
    // migrate now would leave out is out of scope, by the same decision.
    let mut messages = Vec::new();
    for (fi, s) in scanned.iter().enumerate() {
        let row = known
            .folders
            .get(&s.folder.wire_name)
            .filter(|r| r.uid_validity == s.uid_validity);
        for m in &s.metas {
            let state = row
                .and_then(|r| known.states.get(&(r.id, m.uid)).copied())
                .map(|st| if st == State::Gone { State::Pending } else { st })
                .unwrap_or(State::Pending);
            messages.push(scope::Message {
                candidate: Candidate {
                    folder: fi,
                    uid: m.uid,
                    internal_date: m.internal_date,
                    size: m.size,
                    state,
                },
                gm_msgid: m.gm_msgid,
                message_id: m.message_id.as_deref(),
            });
        }
    }
    let scope_folders: Vec<scope::Folder> = scanned
        .iter()
        .map(|s| scope::Folder {
            role: s.folder.role,
            name: s.folder.display(),
        })
        .collect();
    let label_based = labels::label_based(scanned.iter().map(|s| s.folder.role), gmail_ext);
    let decided = scope::decide(&ctx.scope, &scope_folders, label_based, &messages);
    let decision = Decision {
        skipped: scope::skipped_by_key(&decided, &messages),
        // Copied flagged, whatever the folder's flags say.
        starred: decided
            .labels
            .iter()
            .zip(&messages)
            .filter(|((_, starred), _)| *starred)
            .map(|(_, m)| (m.candidate.folder, m.candidate.uid))
            .collect(),
    };
    drop(messages);

    // Group source folders by where they land.
    let all: Vec<SourceFolder> = scanned.iter().map(|s| s.folder.clone()).collect();
    let mut groups: Vec<(TargetFolder, Vec<usize>)> = Vec::new();
    for (fi, s) in scanned.iter().enumerate() {
        let tf = transform::target_folder(&s.folder, &all);
        match groups.iter_mut().find(|(t, _)| *t == tf) {
            Some((_, members)) => members.push(fi),
            None => groups.push((tf, vec![fi])),
        }
    }

    let mut target = match ctx.target.open(&user.target_login()).await {
        Ok(t) => t,
        Err(e) => {
            session.logout().await;
            return Err(e);
        }
    };
    let source = (ctx.depth == Depth::Content).then_some(&mut session);
    let result = compare_groups(
        &mut out,
        target.as_mut(),
        source,
        ctx,
        &groups,
        &scanned,
        &decision,
        &known,
    )
    .await;
    target.close().await;
    session.logout().await;
    result?;
    record_findings(ctx, &out)?;
    // INBOX first, then by name; excluded folders last.
    out.folders.sort_by(|a, b| {
        let key = |f: &FolderVerify| {
            (
                f.excluded,
                f.source.first().is_none_or(|s| s != "INBOX"),
                f.source.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    out.complete = out.missing_count == 0 && out.duplicate_count == 0 && out.flags_differ_count == 0;
    if let Some(settings) = &ctx.pim {
        let compared = pim::verify_user(ctx, settings, user).await;
        out.complete &= compared.complete();
        out.pim = Some(compared);
    }
    Ok(out)
}

/// What the scope decided for one mailbox, keyed by (folder index, UID).
struct Decision {
    /// Left out, and why.
    skipped: HashMap<(usize, u32), SkipReason>,
    /// Starred on a label-based source: copied with `\Flagged`.
    starred: HashSet<(usize, u32)>,
}

#[allow(clippy::too_many_arguments)]
async fn compare_groups(
    out: &mut UserVerify,
    target: &mut dyn TargetSession,
    mut source: Option<&mut crate::source::Session>,
    ctx: &Ctx,
    groups: &[(TargetFolder, Vec<usize>)],
    scanned: &[Scanned],
    decision: &Decision,
    known: &Known,
) -> Result<(), Error> {
    let capabilities = ctx.target.capabilities();
    // Where each source message's copy was found, by Message-ID and size:
    // an extra copy elsewhere of one of these is a duplicate.
    let mut present_in: HashMap<(String, u64), String> = HashMap::new();
    for (tf, members) in groups {
        let known_ref = members
            .iter()
            .find_map(|&fi| known.folders.get(&scanned[fi].folder.wire_name)?.target_ref.clone());
        let inventory = target
            .inventory(tf, known_ref.as_deref())
            .await
            .map_err(|e| e.context(format!("target folder {}", tf.display())))?;
        let mut fv = FolderVerify {
            source: members.iter().map(|&fi| scanned[fi].folder.display()).collect(),
            // Maildir's inbox reference is the empty path: show the role.
            target: known_ref
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(crate::utf7::decode)
                .unwrap_or_else(|| tf.display()),
            target_messages: inventory.len() as u64,
            target_bytes: inventory.iter().map(|i| i.size).sum(),
            ..Default::default()
        };
        let mut pool = Pool::new(&inventory);
        let mut in_scope: Vec<(usize, &MessageMeta)> = Vec::new();
        let mut out_of_scope: Vec<&MessageMeta> = Vec::new();
        for &fi in members {
            for m in &scanned[fi].metas {
                fv.source_messages += 1;
                fv.source_bytes += m.size;
                match decision.skipped.get(&(fi, m.uid)) {
                    Some(reason) => {
                        *fv.skipped.entry(reason.as_str().to_owned()).or_default() += 1;
                        out_of_scope.push(m);
                    }
                    None => {
                        fv.in_scope += 1;
                        fv.in_scope_bytes += m.size;
                        in_scope.push((fi, m));
                    }
                }
            }
        }
        // Exact matches first, for everything, so a Message-ID-only match
        // never takes a copy another message matches exactly.
        let mut unmatched = Vec::new();
        let mut found: Vec<(usize, &MessageMeta, &Inventoried)> = Vec::new();
        for &(fi, m) in &in_scope {
            match pool.take_exact(m) {
                Some(item) => {
                    fv.present += 1;
                    found.push((fi, m, item));
                }
                None => unmatched.push((fi, m)),
            }
        }
        let out_unmatched: Vec<&MessageMeta> = out_of_scope
            .into_iter()
            .filter(|m| pool.take_exact(m).is_none())
            .collect();
        for (fi, m) in unmatched {
            let s = &scanned[fi];
            // A copy with the Message-ID but another size is not the
            // message: it may have been cut short or altered on the way.
            let status = match pool.take_by_id(m) {
                Some(found) => {
                    fv.size_differs += 1;
                    format!(
                        "the target has a message with this Message-ID but {found} bytes, the source {} bytes: the copy may be truncated or altered; delete it in the target and run cutover migrate",
                        m.size
                    )
                }
                None => {
                    if let Some(row) = copied_row(known, s, m) {
                        out.not_copied
                            .push((row, m.uid, "recorded as copied, but the target lacks it".into()));
                    }
                    missing_status(known, s, m, ctx.can_record)
                }
            };
            fv.missing += 1;
            out.missing.push(MissingItem::of(s, m, status));
        }
        // Copies counted missing for their content: their flags do not matter.
        let mut altered: HashSet<(usize, u32)> = HashSet::new();
        if let Some(source) = source.as_deref_mut() {
            let differ = compare_content(
                source,
                target,
                tf,
                known_ref.as_deref(),
                ctx.read_bytes,
                scanned,
                &found,
            )
            .await?;
            for (fi, m, why) in differ {
                altered.insert((fi, m.uid));
                let s = &scanned[fi];
                if let Some(row) = copied_row(known, s, m) {
                    out.not_copied
                        .push((row, m.uid, format!("the copy in the target differs: {why}")));
                }
                fv.present -= 1;
                fv.content_differs += 1;
                fv.missing += 1;
                out.missing.push(MissingItem::of(
                    s,
                    m,
                    if ctx.can_record {
                        format!(
                            "the copy in the target is not the message: {why}. verify recorded it as failed: delete that copy in the target, then run cutover migrate to copy it again"
                        )
                    } else {
                        format!(
                            "the copy in the target is not the message: {why}. A migrate was running, so verify could not record it: delete that copy in the target, run cutover verify again once the migrate ended, then cutover migrate"
                        )
                    },
                ));
            }
        }
        for &(fi, m, item) in &found {
            if altered.contains(&(fi, m.uid)) {
                continue;
            }
            let expected = expected_flags(&m.flags, decision.starred.contains(&(fi, m.uid)));
            let Some(differ) = flags_differ(&expected, &item.flags, capabilities.listed_flags) else {
                continue;
            };
            let s = &scanned[fi];
            let row = copied_row(known, s, m);
            let status = if !capabilities.update_flags {
                "this target cannot change a copy's flags: set them in the target"
            } else if row.is_none() {
                "the state DB does not record this copy as made by cutover, so migrate does not change it: set the flags in the target"
            } else if ctx.can_record {
                "verify marked the copy: run cutover migrate to write the source's flags to it"
            } else {
                "a migrate was running, so verify could not mark the copy: run cutover verify again once it ended, then cutover migrate"
            };
            if let Some(row) = row
                && capabilities.update_flags
            {
                out.flags_to_rewrite.push((row, m.uid));
            }
            fv.flags_differ += 1;
            out.flags_differ.push(FlagsItem {
                folder: s.folder.display(),
                uid: m.uid,
                message_id: m.message_id.clone(),
                subject: m.subject.clone(),
                source: describe_flags(&expected, capabilities.listed_flags),
                target: describe_flags(&item.flags, capabilities.listed_flags),
                differ,
                status: status.to_owned(),
            });
        }
        // Skipped messages an earlier run did copy are not extra.
        for m in out_unmatched {
            let _ = pool.take_by_id(m);
        }
        for item in pool.rest() {
            fv.extra += 1;
            out.extra.push(ExtraItem {
                folder: fv.target.clone(),
                message_id: item.message_id.clone(),
                size: item.size,
                duplicate_of: None,
            });
        }
        for (_, m, _) in &found {
            if let Some(id) = &m.message_id {
                present_in
                    .entry((id.clone(), m.size))
                    .or_insert_with(|| fv.target.clone());
            }
        }
        out.source_messages += fv.source_messages;
        out.out_of_scope += fv.source_messages - fv.in_scope;
        out.in_scope += fv.in_scope;
        out.target_messages += fv.target_messages;
        out.missing_count += fv.missing;
        out.extra_count += fv.extra;
        out.flags_differ_count += fv.flags_differ;
        out.folders.push(fv);
    }
    for extra in &mut out.extra {
        let Some(id) = &extra.message_id else { continue };
        if let Some(folder) = present_in.get(&(id.clone(), extra.size))
            && *folder != extra.folder
        {
            extra.duplicate_of = Some(folder.clone());
            out.duplicate_count += 1;
        }
    }
    Ok(())
}

/// The target's messages of one folder, taken as they are matched.
struct Pool<'a> {
    items: Vec<Option<&'a Inventoried>>,
    exact: HashMap<(Option<String>, u64), Vec<usize>>,
    by_id: HashMap<String, Vec<usize>>,
}

/// Takes the first item of `list` not taken yet.
fn take_from<'a>(items: &mut [Option<&'a Inventoried>], list: &mut Vec<usize>) -> Option<&'a Inventoried> {
    while let Some(i) = list.pop() {
        if let Some(item) = items[i].take() {
            return Some(item);
        }
    }
    None
}
impl<'a> Pool<'a> {
    fn new(inventory: &'a [Inventoried]) -> Pool<'a> {
        let mut exact: HashMap<(Option<String>, u64), Vec<usize>> = HashMap::new();
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        // Reversed, so that `pop` takes them in listing order.
        for (i, item) in inventory.iter().enumerate().rev() {
            exact.entry((item.message_id.clone(), item.size)).or_default().push(i);
            if let Some(id) = &item.message_id {
                by_id.entry(id.clone()).or_default().push(i);
            }
        }
        Pool {
            items: inventory.iter().map(Some).collect(),
            exact,
            by_id,
        }
    }

    /// Same Message-ID (or both without one) and same size.
    fn take_exact(&mut self, m: &MessageMeta) -> Option<&'a Inventoried> {
        let list = self.exact.get_mut(&(m.message_id.clone(), m.size))?;
        take_from(&mut self.items, list)
    }

    /// Same Message-ID, any size: the size of the item taken.
    fn take_by_id(&mut self, m: &MessageMeta) -> Option<u64> {
        let list = self.by_id.get_mut(m.message_id.as_deref()?)?;
        take_from(&mut self.items, list).map(|item| item.size)
    }

    fn rest(self) -> impl Iterator<Item = &'a Inventoried> {
        self.items.into_iter().flatten()
    }
}

/// Records as failed the messages the checkpoint says were copied but the
/// target lacks or holds altered: the next migrate then looks for each
/// (adopting a faithful copy, should one have appeared) and copies it again.
/// Marks the copies whose flags differ, for the next migrate to write the
/// source's flags to them.
fn record_findings(ctx: &Ctx, out: &UserVerify) -> Result<(), Error> {
    let (Some(db), true) = (&ctx.db, ctx.can_record) else {
        return Ok(());
    };
    if out.not_copied.is_empty() && out.flags_to_rewrite.is_empty() {
        return Ok(());
    }
    let records: Vec<crate::checkpoint::Record> = out
        .not_copied
        .iter()
        .map(|(folder_id, uid, reason)| crate::checkpoint::Record::Failed {
            folder_id: *folder_id,
            uid: *uid,
            reason: format!("cutover verify: {reason}"),
        })
        .collect();
    tokio::task::block_in_place(|| {
        let mut cp = db.lock().unwrap_or_else(|p| p.into_inner());
        cp.apply(&records).map_err(|e| Error::fatal(e.0))?;
        cp.rewrite_flags(&out.flags_to_rewrite).map_err(|e| Error::fatal(e.0))
    })
}

/// The flags a copy of a message with `flags` carries as `migrate` wrote
/// it: starred on a label-based source, it is flagged.
fn expected_flags(flags: &Flags, starred: bool) -> Flags {
    let mut flags = flags.clone();
    if starred && !flags.flagged() {
        flags.0.push("\\Flagged".to_owned());
    }
    flags
}

/// The flags of `compared` set on one side only, between what a copy
/// should carry and what the target holds: `None` when they agree.
fn flags_differ(expected: &Flags, held: &Flags, compared: &[&str]) -> Option<Vec<String>> {
    let differ: Vec<String> = compared
        .iter()
        .filter(|f| expected.has(f) != held.has(f))
        .map(|f| (*f).to_owned())
        .collect();
    (!differ.is_empty()).then_some(differ)
}

/// The state of the flags `compared`, for the admin: "read+flagged",
/// "unread+answered".
fn describe_flags(flags: &Flags, compared: &[&str]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for f in compared {
        let name = f.trim_start_matches('\\').to_ascii_lowercase();
        if f.eq_ignore_ascii_case("\\Seen") {
            parts.insert(0, if flags.seen() { "read".into() } else { "unread".into() });
        } else if flags.has(f) {
            parts.push(name);
        }
    }
    if parts.is_empty() {
        parts.push("none".into());
    }
    parts.join("+")
}

/// Reads the source messages `found` in the target, a bounded number of
/// bytes at a time, and has the target compare each with its copy: the
/// ones whose copy differs, and how.
async fn compare_content<'m>(
    source: &mut crate::source::Session,
    target: &mut dyn TargetSession,
    folder: &TargetFolder,
    known: Option<&str>,
    read_bytes: u64,
    scanned: &[Scanned],
    found: &[(usize, &'m MessageMeta, &Inventoried)],
) -> Result<Vec<(usize, &'m MessageMeta, String)>, Error> {
    let mut differ = Vec::new();
    let mut members: Vec<usize> = found.iter().map(|f| f.0).collect();
    members.dedup();
    for fi in members {
        let s = &scanned[fi];
        let mine: Vec<&(usize, &MessageMeta, &Inventoried)> = found.iter().filter(|f| f.0 == fi).collect();
        source
            .examine(&s.folder.wire_name)
            .await
            .map_err(|e| e.context(format!("source folder {}", s.folder.display())))?;
        let mut at = 0;
        while at < mine.len() {
            // A batch of at most `read_bytes` (at least one message).
            let mut end = at + 1;
            let mut bytes = mine[at].1.size;
            while end < mine.len() && bytes + mine[end].1.size <= read_bytes {
                bytes += mine[end].1.size;
                end += 1;
            }
            let batch = &mine[at..end];
            let uids: Vec<u32> = batch.iter().map(|f| f.1.uid).collect();
            let mut bodies: HashMap<u32, bytes::Bytes> = HashMap::with_capacity(uids.len());
            source
                .fetch_bodies(&uids, bytes.saturating_mul(2).saturating_add(1 << 20), |uid, body| {
                    bodies.insert(uid, body);
                })
                .await
                .map_err(|e| e.context(format!("source folder {}", s.folder.display())))?;
            for &&(fi, m, item) in batch {
                // Expunged on the source since the scan: nothing to compare.
                let Some(body) = bodies.remove(&m.uid) else { continue };
                if let Some(why) = target
                    .compare_content(folder, known, item, &body)
                    .await
                    .map_err(|e| e.context(format!("target folder {}", folder.display())))?
                {
                    differ.push((fi, m, why));
                }
            }
            at = end;
        }
    }
    Ok(differ)
}

/// The checkpoint's folder row of `m` when it records `m` as copied.
fn copied_row(known: &Known, s: &Scanned, m: &MessageMeta) -> Option<i64> {
    let row = known.folders.get(&s.folder.wire_name)?;
    (row.uid_validity == s.uid_validity && known.states.get(&(row.id, m.uid)) == Some(&State::Copied)).then_some(row.id)
}

fn missing_status(known: &Known, s: &Scanned, m: &MessageMeta, can_record: bool) -> String {
    let Some(row) = known.folders.get(&s.folder.wire_name) else {
        return "not scanned yet (new folder since the last migrate): run cutover migrate".into();
    };
    if row.uid_validity != s.uid_validity {
        return "the folder's UIDVALIDITY changed since the last migrate: run cutover migrate".into();
    }
    match known.states.get(&(row.id, m.uid)) {
        None => "arrived after the last migrate: run cutover migrate".into(),
        Some(State::Pending) => "not copied yet: run cutover migrate".into(),
        Some(State::InFlight) => "upload was interrupted: run cutover migrate (it looks it up before resending)".into(),
        Some(State::Failed) => {
            let reason = known
                .reasons
                .get(&(s.folder.display(), m.uid))
                .map(String::as_str)
                .unwrap_or("unknown error");
            format!("failed: {reason}; run cutover migrate to retry")
        }
        Some(State::Copied) if can_record => {
            "recorded as copied but not in the target (deleted or moved there after the copy?); verify recorded it as failed: run cutover migrate to copy it again".into()
        }
        Some(State::Copied) => {
            "recorded as copied but not in the target (deleted or moved there after the copy?); a migrate was running, so verify could not record it: run cutover verify again once it ended, then cutover migrate".into()
        }
        Some(State::Gone) => "recorded as deleted on the source, but it is there: run cutover migrate".into(),
        Some(State::Skipped(r)) => format!("skipped ({r}) by an earlier run; run cutover migrate"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flags;

    fn meta(uid: u32, id: Option<&str>, size: u64) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags::default(),
            internal_date: 0,
            size,
            message_id: id.map(str::to_owned),
            subject: None,
            gm_msgid: None,
        }
    }

    fn inv(id: Option<&str>, size: u64) -> Inventoried {
        Inventoried {
            message_id: id.map(str::to_owned),
            size,
            id: String::new(),
            flags: Flags::default(),
        }
    }

    #[test]
    fn pool_matches_exactly_then_by_id_and_counts_duplicates() {
        let inventory = vec![
            inv(Some("<a>"), 10),
            inv(Some("<a>"), 10),
            inv(Some("<b>"), 99),
            inv(None, 5),
        ];
        let mut pool = Pool::new(&inventory);
        assert!(pool.take_exact(&meta(1, Some("<a>"), 10)).is_some());
        assert!(pool.take_exact(&meta(2, Some("<b>"), 20)).is_none());
        assert_eq!(pool.take_by_id(&meta(2, Some("<b>"), 20)), Some(99));
        assert!(pool.take_exact(&meta(3, None, 5)).is_some());
        assert!(pool.take_exact(&meta(4, None, 5)).is_none());
        assert_eq!(pool.take_by_id(&meta(5, Some("<c>"), 1)), None);
        let rest: Vec<&Inventoried> = pool.rest().collect();
        assert_eq!(rest, vec![&inv(Some("<a>"), 10)], "the duplicate is extra");
    }

    #[test]
    fn flags_are_compared_where_the_target_keeps_them() {
        let imap: &[&str] = &["\\Seen", "\\Flagged", "\\Answered"];
        let graph: &[&str] = &["\\Seen", "\\Flagged"];
        let f = Flags::from_wire;
        let source = f("\\Seen \\Flagged $Forwarded");
        assert_eq!(flags_differ(&source, &f("\\flagged \\SEEN"), imap), None, "case aside");
        assert_eq!(
            flags_differ(&source, &f(""), imap),
            Some(vec!["\\Seen".to_owned(), "\\Flagged".to_owned()])
        );
        assert_eq!(describe_flags(&source, imap), "read+flagged");
        assert_eq!(describe_flags(&f(""), imap), "unread");
        assert_eq!(describe_flags(&f("\\Answered"), imap), "unread+answered");
        // Keywords and \Draft are not compared; \Answered only where kept.
        assert_eq!(flags_differ(&f("\\Seen Work \\Draft"), &f("\\Seen"), imap), None);
        let answered = f("\\Seen \\Answered");
        assert_eq!(
            flags_differ(&answered, &f("\\Seen"), imap),
            Some(vec!["\\Answered".to_owned()])
        );
        assert_eq!(
            flags_differ(&answered, &f("\\Seen"), graph),
            None,
            "Graph keeps no \\Answered"
        );
        assert_eq!(describe_flags(&answered, graph), "read");
        assert_eq!(describe_flags(&f(""), &["\\Flagged"]), "none");
        // A message starred on a label-based source is copied flagged.
        let starred = expected_flags(&f("\\Seen"), true);
        assert_eq!(flags_differ(&starred, &f("\\Seen \\Flagged"), graph), None);
        assert_eq!(
            flags_differ(&starred, &f("\\Seen"), graph),
            Some(vec!["\\Flagged".to_owned()])
        );
        assert_eq!(expected_flags(&f("\\Flagged"), true), f("\\Flagged"), "flagged once");
    }
}
