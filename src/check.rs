//! `cutover check`: the dress rehearsal before the first migrate, in the
//! spirit of Microsoft's Test-MigrationServerAvailability but for every
//! user of the users file. Nothing is left behind anywhere: for each user it
//! logs in to the source and lists every folder with its message count and
//! size (STATUS (MESSAGES SIZE) where the server offers STATUS=SIZE, else
//! EXAMINE and the sum of RFC822.SIZE), opens the target mailbox read-only,
//! and flags what would go wrong or be left out: a refused login, a target
//! mailbox that does not exist or may not be opened, messages over
//! `max_message_bytes`, mailboxes over `max_items`, an IMAP target that
//! will not create folders where migrate puts them (tried with a scratch
//! folder, deleted at once). A short timed fetch of
//! a few message bodies measures the source's read rate, from which the
//! volume gives an estimated copy time.
//!
//! With `[contacts_calendars]` it also opens each user's contacts-and-
//! calendars source the way a migrate does and counts what is there from
//! the item listings alone (hrefs and ETags, never an item's body), so a
//! login the DAV server refuses or a user's missing files show up here
//! rather than as a partial user after the mail was copied. The target
//! side is opened too; for Graph its default calendar is looked up, which
//! is read-only and needs the same permission as writing events.
//!
//! For a label-based source whose labels become categories, the target's
//! category list is read (Graph: Outlook's master category list, which
//! needs MailboxSettings.Read; a migrate adds to it with
//! MailboxSettings.ReadWrite): a refusal is a warning naming the
//! permission, since mail is copied without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::build::{self, Pim, StartError};
use crate::error::Error;
use crate::model::{FolderRole, ItemKind, TargetFolder};
use crate::progress::human_bytes;
use crate::report::human_duration;
use crate::roster::UserJob;
use crate::scope;
use crate::settings::{Settings, TargetSettings};
use crate::source::{Session, Source};
use crate::target::Target;

/// Messages fetched to measure the read rate, and at most how many bytes
/// of each (a partial fetch, so a mailbox of big attachments stays cheap).
const SAMPLE_MESSAGES: u32 = 20;
const SAMPLE_BYTES_EACH: u64 = 256 * 1024;

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub users: Vec<UserCheck>,
    pub totals: CheckTotals,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckTotals {
    pub users: u64,
    /// Users with no problem (warnings allowed).
    pub ready: u64,
    /// Users a migrate would fail for.
    pub failing: u64,
    pub messages: u64,
    pub bytes: u64,
    pub too_large: u64,
    /// Estimated time to copy everything with `parallel_users` mailboxes at
    /// once, from the per-user estimates.
    pub estimated_seconds: Option<u64>,
    /// Contacts and calendars over the users whose source could be read;
    /// absent without `[contacts_calendars]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pim: Option<PimTotals>,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct PimTotals {
    pub calendars: u64,
    pub address_books: u64,
    pub events: u64,
    pub contacts: u64,
}

impl CheckReport {
    pub fn ready(&self) -> bool {
        self.totals.failing == 0
    }
}

#[derive(Debug, Default, Serialize)]
pub struct UserCheck {
    pub email: String,
    /// No problem found: a migrate should go through.
    pub ready: bool,
    /// What would make a migrate fail for this user, with what to do.
    pub problems: Vec<String>,
    /// What a migrate would leave out or should know about.
    pub warnings: Vec<String>,
    pub source: Option<SourceCheck>,
    pub target: Option<TargetCheck>,
    /// Estimated copy time for the messages in scope.
    pub estimated_seconds: Option<u64>,
    /// Contacts and calendars, when `[contacts_calendars]` is configured
    /// and the user's source could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pim: Option<PimCheck>,
}

/// One user's contacts and calendars as a migrate would find them.
#[derive(Debug, Default, Serialize)]
pub struct PimCheck {
    /// Where they are read from (the server URL or the path template).
    pub source: String,
    pub calendars: u64,
    pub address_books: u64,
    /// Items listed in the calendars (a recurring series is one).
    pub events: u64,
    pub contacts: u64,
    pub collections: Vec<PimCollectionCheck>,
    /// Collections a migrate leaves out, with why (task lists, journals).
    pub skipped: Vec<PimSkipped>,
    /// What was checked on the target, once it could be opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct PimCollectionCheck {
    pub name: String,
    /// "calendar" or "address book".
    pub kind: String,
    pub items: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PimSkipped {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct SourceCheck {
    /// "STATUS=SIZE" or "RFC822.SIZE" (EXAMINE and a size fetch per folder).
    pub size_method: String,
    /// Where the mailbox's own folders were found (IMAP: the personal
    /// namespace, announced or inferred, or the UserRoot).
    pub folders_at: Option<String>,
    /// COMPRESS=DEFLATE was negotiated with the source (offered by the
    /// server and allowed by `[source] compress`).
    pub compressed: bool,
    pub folders: Vec<FolderCheck>,
    /// Totals over the folders that are not excluded.
    pub messages: u64,
    pub bytes: u64,
    /// Messages larger than `max_message_bytes`: skipped by a migrate.
    pub too_large: u64,
    /// Messages beyond the newest `max_items`: skipped by a migrate.
    pub over_item_cap: u64,
    pub sample: Option<Sample>,
    /// A label-based source in categories mode: a migrate sets labels as
    /// categories (and registers them with the target).
    #[serde(skip)]
    pub labels_as_categories: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct FolderCheck {
    pub folder: String,
    pub messages: u64,
    pub bytes: u64,
    pub too_large: u64,
    /// Left out by `[limits] exclude` (counted here, not in the totals).
    pub excluded: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Sample {
    pub folder: String,
    pub messages: u32,
    pub bytes: u64,
    pub seconds: f64,
    pub bytes_per_second: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct TargetCheck {
    pub target: String,
    /// What the target's inbox holds already (`None` for targets that
    /// cannot list a folder).
    pub inbox_messages: Option<u64>,
    pub inbox_bytes: Option<u64>,
    /// Where a migrate will put folders (IMAP: the personal namespace, by
    /// creating and deleting a scratch folder there).
    pub folders: Option<String>,
}

struct Ctx {
    settings: Settings,
    source: Source,
    target: Arc<dyn Target>,
    scope: scope::Rules,
    /// Why the Maildir root cannot be written, checked once for everyone.
    maildir_problem: Option<String>,
    /// Contacts and calendars (`[contacts_calendars]`).
    pim: Option<Pim>,
}

/// Checks every user; `Err` only when the check cannot start.
pub async fn check(settings: Settings, users: Vec<UserJob>) -> Result<CheckReport, StartError> {
    // Built as for a migrate, so a Graph target is one client for mail and
    // for contacts and calendars.
    let built = build::migration(&settings, users.len())?;
    let (source, target, scope, pim) = (built.source, built.target, built.scope, built.pim);
    let maildir_problem = match &settings.target {
        TargetSettings::Maildir { path, .. } => maildir_writable(path).err(),
        _ => None,
    };
    let parallel = settings.run.parallel_users;
    let ctx = Arc::new(Ctx {
        settings,
        source,
        target,
        scope,
        maildir_problem,
        pim,
    });
    let results = build::each_user(
        users,
        parallel,
        |user| {
            let ctx = ctx.clone();
            async move { check_user(&ctx, &user).await }
        },
        |email, reason| UserCheck {
            email,
            problems: vec![reason],
            ..Default::default()
        },
    )
    .await;
    let mut report = CheckReport::default();
    let mut estimate_sum = 0u64;
    let mut estimated = 0;
    for u in results {
        report.totals.users += 1;
        if u.ready {
            report.totals.ready += 1;
        } else {
            report.totals.failing += 1;
        }
        if let Some(s) = &u.source {
            report.totals.messages += s.messages;
            report.totals.bytes += s.bytes;
            report.totals.too_large += s.too_large;
        }
        if let Some(p) = &u.pim {
            let t = report.totals.pim.get_or_insert_with(PimTotals::default);
            t.calendars += p.calendars;
            t.address_books += p.address_books;
            t.events += p.events;
            t.contacts += p.contacts;
        }
        if let Some(e) = u.estimated_seconds {
            estimate_sum += e;
            estimated += 1;
        }
        report.users.push(u);
    }
    if ctx.pim.is_some() && report.totals.pim.is_none() {
        report.totals.pim = Some(PimTotals::default());
    }
    // Mailboxes run `parallel_users` at a time: a rough division, good
    // enough for planning when mailboxes are of similar size.
    report.totals.estimated_seconds =
        (estimated > 0).then(|| estimate_sum.div_ceil(ctx.settings.run.parallel_users.max(1) as u64));
    Ok(report)
}

async fn check_user(ctx: &Ctx, user: &UserJob) -> UserCheck {
    let mut out = UserCheck {
        email: user.email.clone(),
        ..Default::default()
    };
    match ctx.source.open(&user.source_login()).await {
        Ok(mut session) => {
            let result = check_source(ctx, &mut session).await;
            session.logout().await;
            match result {
                Ok(source) => {
                    let limits = &ctx.scope.limits;
                    if source.too_large > 0 {
                        out.warnings.push(format!(
                            "{} larger than max_message_bytes ({}) will be skipped; raise [limits] max_message_bytes (up to 150 MiB) to copy them",
                            plural(source.too_large, "message"),
                            human_bytes(limits.max_message_bytes)
                        ));
                    }
                    if source.over_item_cap > 0 {
                        out.warnings.push(format!(
                            "{} in scope but max_items is {}: the oldest {} will be skipped; raise [limits] max_items to copy them",
                            plural(source.messages, "message"),
                            limits.max_items,
                            source.over_item_cap
                        ));
                    }
                    if let Some(sample) = &source.sample
                        && sample.bytes_per_second > 0.0
                    {
                        let connections = ctx.settings.run.connections_per_user.max(1) as f64;
                        let seconds = source.bytes as f64 / (sample.bytes_per_second * connections);
                        out.estimated_seconds = Some(seconds.ceil() as u64);
                    } else if source.bytes == 0 {
                        out.estimated_seconds = Some(0);
                    }
                    out.source = Some(source);
                }
                Err(e) => out.problems.push(format!("source: {e}")),
            }
        }
        Err(e) => out.problems.push(format!("source: {e}")),
    }

    if let Some(p) = &ctx.maildir_problem {
        out.problems.push(format!("target: {p}"));
    }
    match ctx.target.open(&user.target_login()).await {
        Ok(mut session) => {
            let inbox = TargetFolder {
                anchor: Some(FolderRole::Inbox),
                path: Vec::new(),
            };
            let mut check = TargetCheck {
                target: ctx.target.describe(),
                ..Default::default()
            };
            match session.rehearse_folders().await {
                Ok(note) => check.folders = note,
                Err(e) => out.problems.push(format!("target: {e}")),
            }
            // A target that cannot list is checked by opening it only.
            if ctx.target.capabilities().list {
                match session.inventory(&inbox, None).await {
                    Ok(items) => {
                        check.inbox_messages = Some(items.len() as u64);
                        check.inbox_bytes = Some(items.iter().map(|i| i.size).sum());
                    }
                    Err(e) => out.problems.push(format!(
                        "target: the mailbox cannot be opened: {e}; check that it exists and that the target login may open it"
                    )),
                }
            }
            session.close().await;
            // Labels become categories: Outlook lists them only once the
            // target's category list holds them, which needs a permission
            // of its own (Graph: reading the list is all that is tried).
            if out.source.as_ref().is_some_and(|s| s.labels_as_categories) {
                match ctx.target.register_labels(&user.target_login(), &[]).await {
                    Ok(Some(note)) => out.warnings.push(format!("target: {note}")),
                    Ok(None) => {}
                    Err(e) => out.warnings.push(format!(
                        "target: the category list cannot be read ({e}); labels are set on the messages all the same"
                    )),
                }
            }
            out.target = Some(check);
        }
        Err(e) => out.problems.push(format!(
            "{e} (for the target: does the mailbox exist, and may this login open it?)"
        )),
    }
    if let Some(pim) = &ctx.pim {
        // A Graph target is the mail target's mailbox: when that could not
        // be opened, the problem is said once, above.
        let target = if pim.target_is_dav || out.target.is_some() {
            Some(check_pim_target(pim, user).await)
        } else {
            None
        };
        match check_pim_source(pim, user).await {
            Ok((mut check, problems)) => {
                out.problems.extend(problems);
                check.target = target.as_ref().and_then(|t| t.as_ref().ok()).cloned();
                out.pim = Some(check);
            }
            Err(p) => out.problems.push(p),
        }
        if let Some(Err(p)) = target {
            out.problems.push(p);
        }
    }
    out.ready = out.problems.is_empty();
    out
}

/// The user's contacts and calendars, counted from the source's listings
/// (hrefs and ETags only). `Err`: the source cannot be read at all (no
/// login, no files), worded for the admin. The problems beside `Ok` are
/// collections whose listing was refused: a migrate would leave them out
/// and end the user partial.
async fn check_pim_source(pim: &Pim, user: &UserJob) -> Result<(PimCheck, Vec<String>), String> {
    let describe = pim.describe_source();
    let source_problem = |e: Error| {
        format!(
            "contacts and calendars source ({describe}): {e}; a migrate would copy no contacts or events for this user"
        )
    };
    let source = pim.source_for(user).map_err(source_problem)?;
    let discovery = source.collections().await.map_err(source_problem)?;
    let mut check = PimCheck {
        source: describe.clone(),
        calendars: discovery.calendars.len() as u64,
        address_books: discovery.address_books.len() as u64,
        ..Default::default()
    };
    let mut problems = Vec::new();
    let none = BTreeMap::new();
    for (kind, collections) in [
        (ItemKind::Event, &discovery.calendars),
        (ItemKind::Contact, &discovery.address_books),
    ] {
        let kind_word = if kind == ItemKind::Event {
            "calendar"
        } else {
            "address book"
        };
        for collection in collections {
            let name = collection
                .display_name
                .clone()
                .unwrap_or_else(|| collection.href.clone());
            match source.changes(collection, None, &none).await {
                Ok(listing) => {
                    let items = listing.changed.len() as u64;
                    match kind {
                        ItemKind::Event => check.events += items,
                        _ => check.contacts += items,
                    }
                    check.collections.push(PimCollectionCheck {
                        name,
                        kind: kind_word.into(),
                        items,
                    });
                }
                Err(e) => problems.push(format!(
                    "contacts and calendars source ({describe}): {kind_word} \"{name}\" cannot be listed: {e}; a migrate would leave it out"
                )),
            }
        }
    }
    check.skipped = discovery
        .skipped
        .iter()
        .map(|s| PimSkipped {
            name: s.display_name.clone().unwrap_or_else(|| s.href.clone()),
            reason: s.reason.clone(),
        })
        .collect();
    Ok((check, problems))
}

/// Opens the user's contacts-and-calendars target as a migrate does and,
/// on Graph, looks up the default calendar (read-only); what was checked,
/// or the problem.
async fn check_pim_target(pim: &Pim, user: &UserJob) -> Result<String, String> {
    let mut login = user.target_login();
    if pim.target_is_dav && login.login.is_none() {
        login.login = Some(user.username.clone());
        login.secret = Some(user.password.clone());
    }
    let describe = pim.target.describe();
    let problem = |e: Error| format!("contacts and calendars target ({describe}): {e}");
    let mut session = pim.target.open(&login).await.map_err(problem)?;
    let note = if pim.target_is_dav {
        Ok(format!("{describe}, logged in"))
    } else {
        // With no name and nothing stored this only looks the calendar up.
        session
            .ensure_collection(ItemKind::Event, "", None, None)
            .await
            .map(|_| {
                format!(
                    "{describe}, default calendar found (the app needs the application permissions Calendars.ReadWrite and Contacts.ReadWrite with admin consent; only reading calendars was tried)"
                )
            })
            .map_err(problem)
    };
    session.close().await;
    note
}

async fn check_source(ctx: &Ctx, session: &mut Session) -> Result<SourceCheck, Error> {
    let max_bytes = ctx.scope.limits.max_message_bytes;
    let folders = session.folders().await?;
    let mut out = SourceCheck {
        compressed: session.is_compressed(),
        folders_at: session.namespace_note(),
        ..Default::default()
    };
    let names: Vec<String> = folders.iter().map(|f| f.wire_name.clone()).collect();
    out.size_method = session.size_method().into();
    let status = session.folder_sizes(&names).await?;
    for (folder, status) in folders.iter().zip(status) {
        let mut fc = FolderCheck {
            folder: folder.display(),
            excluded: ctx.scope.excludes(&folder.display()),
            ..Default::default()
        };
        match status {
            Some((messages, bytes)) => {
                fc.messages = u64::from(messages);
                fc.bytes = bytes;
                // Only a folder larger in total than the limit can hold a
                // message over it: the others need no search.
                if bytes > max_bytes && !fc.excluded {
                    session.examine(&folder.wire_name).await?;
                    fc.too_large = session.count_larger(max_bytes).await?;
                }
            }
            None => {
                let state = session.examine(&folder.wire_name).await?;
                fc.messages = u64::from(state.exists);
                if state.exists > 0 {
                    let sizes = session.message_sizes().await?;
                    fc.bytes = sizes.iter().sum();
                    fc.too_large = sizes.iter().filter(|&&s| s > max_bytes).count() as u64;
                }
            }
        }
        out.folders.push(fc);
    }
    // A label-based source (Gmail) shows one message in several folders:
    // only the folders the label rules copy from count, so a message is
    // not counted once per label.
    let roles: Vec<_> = folders.iter().map(|f| f.role).collect();
    let counted = ctx.scope.counted_folders(&roles, session.has_gmail_extensions());
    out.labels_as_categories = crate::labels::label_based(roles.iter().copied(), session.has_gmail_extensions())
        && ctx.scope.labels.mode == crate::labels::LabelMode::Categories;
    for (fc, counted) in out.folders.iter().zip(counted) {
        if !fc.excluded && counted {
            out.messages += fc.messages;
            out.bytes += fc.bytes;
            out.too_large += fc.too_large;
        }
    }
    out.over_item_cap = ctx.scope.over_item_cap(out.messages);

    // The read rate, from the newest messages of the biggest folder.
    if let Some((i, _)) = out
        .folders
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.excluded && f.messages > 0)
        .max_by_key(|(_, f)| f.bytes)
    {
        let state = session.examine(&folders[i].wire_name).await?;
        let count = SAMPLE_MESSAGES.min(state.exists);
        let started = Instant::now();
        let bytes = session.fetch_sample(state.exists, count, SAMPLE_BYTES_EACH).await?;
        let seconds = started.elapsed().max(Duration::from_millis(1)).as_secs_f64();
        out.sample = Some(Sample {
            folder: out.folders[i].folder.clone(),
            messages: count,
            bytes,
            seconds,
            bytes_per_second: bytes as f64 / seconds,
        });
    }
    // INBOX first, then by name, whatever order the server listed them in.
    out.folders
        .sort_by(|a, b| (a.folder != "INBOX", &a.folder).cmp(&(b.folder != "INBOX", &b.folder)));
    Ok(out)
}

/// "1 message", "2 messages".
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Whether Maildir trees can be created under `root`: a probe file in it
/// (or in its nearest existing ancestor, where `migrate` would create it)
/// is created and removed again.
fn maildir_writable(root: &Path) -> Result<(), String> {
    let mut dir: PathBuf = root.to_path_buf();
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => {
                dir = PathBuf::from(".");
                break;
            }
        }
    }
    if !dir.is_dir() {
        return Err(format!(
            "the Maildir path {} is not a directory; point [target] path at a directory",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".cutover-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot write under the Maildir path {} ({e}); give the user running cutover write access to it",
            dir.display()
        )),
    }
}

/// The contacts-and-calendars lines of a user: the counts, each
/// collection, what is left out, what the target showed.
fn render_pim(out: &mut String, p: &PimCheck) {
    out.push_str(&format!(
        "  contacts and calendars: {}, {} in {}, {} in {}\n",
        p.source,
        plural(p.events, "event"),
        plural(p.calendars, "calendar"),
        plural(p.contacts, "contact"),
        plural(p.address_books, "address book")
    ));
    let names: Vec<String> = p.collections.iter().map(|c| format!("{} {}", c.kind, c.name)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (name, c) in names.iter().zip(&p.collections) {
        out.push_str(&format!("    {name:<width$} {:>8}\n", c.items));
    }
    for s in &p.skipped {
        out.push_str(&format!("    {} (not copied: {})\n", s.name, s.reason));
    }
    if let Some(t) = &p.target {
        out.push_str(&format!("  contacts and calendars target: {t}\n"));
    }
}

/// Table for people: per user its verdict, folders, problems, warnings
/// and estimate, then a summary line.
pub fn render_table(report: &CheckReport) -> String {
    let mut out = String::new();
    for u in &report.users {
        out.push_str(&format!(
            "{}: {}\n",
            u.email,
            if u.ready { "READY" } else { "WILL FAIL" }
        ));
        for p in &u.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
        if let Some(s) = &u.source {
            out.push_str(&format!(
                "  source: {} folders, {} messages, {} (sizes by {}{})\n",
                s.folders.iter().filter(|f| !f.excluded).count(),
                s.messages,
                human_bytes(s.bytes),
                s.size_method,
                if s.compressed { ", COMPRESS=DEFLATE" } else { "" }
            ));
            if let Some(at) = &s.folders_at {
                out.push_str(&format!("  source folders: {at}\n"));
            }
            let width = s
                .folders
                .iter()
                .map(|f| f.folder.chars().count())
                .max()
                .unwrap_or(0)
                .max(6)
                + 11;
            for f in &s.folders {
                let name = if f.excluded {
                    format!("{} (excluded)", f.folder)
                } else {
                    f.folder.clone()
                };
                let large = if f.too_large > 0 {
                    format!("  {} too large", f.too_large)
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "    {name:<width$} {:>8}  {:>10}{large}\n",
                    f.messages,
                    human_bytes(f.bytes)
                ));
            }
        }
        if let Some(t) = &u.target {
            match t.inbox_messages {
                Some(n) => out.push_str(&format!(
                    "  target: {}, mailbox opened, its inbox holds {n} messages ({})\n",
                    t.target,
                    human_bytes(t.inbox_bytes.unwrap_or(0))
                )),
                None => out.push_str(&format!("  target: {}, logged in\n", t.target)),
            }
            if let Some(f) = &t.folders {
                out.push_str(&format!("  target folders: {f}\n"));
            }
        }
        if let Some(p) = &u.pim {
            render_pim(&mut out, p);
        }
        for w in &u.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        if let (Some(est), Some(sample)) = (u.estimated_seconds, u.source.as_ref().and_then(|s| s.sample.as_ref())) {
            out.push_str(&format!(
                "  estimate: {} to copy (the source sent {}/s for a sample of {} from {}, times connections_per_user; the target may be slower)\n",
                human_duration(est),
                human_bytes(sample.bytes_per_second as u64),
                plural(u64::from(sample.messages), "message"),
                sample.folder
            ));
        }
    }
    let t = &report.totals;
    out.push_str(&format!(
        "checked {} users: {} ready, {} will fail; {} messages, {} in total, {} too large{}{}\n",
        t.users,
        t.ready,
        t.failing,
        t.messages,
        human_bytes(t.bytes),
        t.too_large,
        match &t.pim {
            Some(p) => format!(
                "; {} in {}, {} in {}",
                plural(p.events, "event"),
                plural(p.calendars, "calendar"),
                plural(p.contacts, "contact"),
                plural(p.address_books, "address book")
            ),
            None => String::new(),
        },
        match t.estimated_seconds {
            Some(s) => format!("; estimated copy time {}", human_duration(s)),
            None => String::new(),
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_with_pim() -> UserCheck {
        UserCheck {
            email: "alice@example.test".into(),
            ready: true,
            pim: Some(PimCheck {
                source: "CalDAV/CardDAV https://dav.example.test/".into(),
                calendars: 2,
                address_books: 1,
                events: 3,
                contacts: 2,
                collections: vec![
                    PimCollectionCheck {
                        name: "Work".into(),
                        kind: "calendar".into(),
                        items: 2,
                    },
                    PimCollectionCheck {
                        name: "Home".into(),
                        kind: "calendar".into(),
                        items: 1,
                    },
                    PimCollectionCheck {
                        name: "Friends".into(),
                        kind: "address book".into(),
                        items: 2,
                    },
                ],
                skipped: vec![PimSkipped {
                    name: "Chores".into(),
                    reason: "a task list (VTODO); only events are copied".into(),
                }],
                target: Some("Graph contacts and calendars, default calendar found".into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_table_counts_contacts_and_events_per_user_and_in_total() {
        let report = CheckReport {
            users: vec![user_with_pim()],
            totals: CheckTotals {
                users: 1,
                ready: 1,
                pim: Some(PimTotals {
                    calendars: 2,
                    address_books: 1,
                    events: 3,
                    contacts: 2,
                }),
                ..Default::default()
            },
        };
        let table = render_table(&report);
        assert!(
            table.contains(
                "  contacts and calendars: CalDAV/CardDAV https://dav.example.test/, 3 events in 2 calendars, 2 contacts in 1 address book\n"
            ),
            "{table}"
        );
        assert!(table.contains("    calendar Work               2\n"), "{table}");
        assert!(table.contains("    address book Friends        2\n"), "{table}");
        assert!(
            table.contains("    Chores (not copied: a task list (VTODO); only events are copied)\n"),
            "{table}"
        );
        assert!(
            table.contains("  contacts and calendars target: Graph contacts and calendars, default calendar found\n"),
            "{table}"
        );
        assert!(
            table.ends_with("0 too large; 3 events in 2 calendars, 2 contacts in 1 address book\n"),
            "{table}"
        );

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["totals"]["pim"]["events"], 3, "{json}");
        assert_eq!(json["totals"]["pim"]["contacts"], 2, "{json}");
        let pim = &json["users"][0]["pim"];
        assert_eq!(
            (pim["calendars"].as_u64(), pim["address_books"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(pim["collections"][2]["kind"], "address book", "{json}");
        assert_eq!(pim["skipped"][0]["name"], "Chores", "{json}");
    }

    #[test]
    fn without_contacts_and_calendars_the_report_is_as_before() {
        let report = CheckReport {
            users: vec![UserCheck {
                email: "bob@example.test".into(),
                ready: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let table = render_table(&report);
        assert!(!table.contains("contacts"), "{table}");
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["users"][0].get("pim").is_none(), "{json}");
        assert!(json["totals"].get("pim").is_none(), "{json}");
    }

    #[test]
    fn maildir_root_is_probed_at_its_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(maildir_writable(&dir.path().join("not/yet/there")).is_ok());
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(maildir_writable(&file).unwrap_err().contains("not a directory"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the probe is removed"
        );
    }
}
