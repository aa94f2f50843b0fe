//! One contract every target must keep, the way rclone's `fstests` hold
//! every backend to the same suite: the cases are written once (module
//! [`contract`]) against `&dyn Target`, and `conformance!` instantiates
//! each of them for every target, so a failure names both the target and
//! the case (`imap::find_after_a_lost_answer`).
//!
//! Targets: Maildir in a temporary directory, once with folder names in
//! modified UTF-7 (the default) and once in UTF-8; IMAP on a real Dovecot
//! (`tests/support/dovecot.rs`, module `imap`) written through a master
//! login; IMAP on a real Cyrus IMAP 3.6 (`tests/support/cyrus.rs`), once
//! with Debian's configuration (`cyrus_debian`: every folder below
//! `INBOX.`, `.` as the separator, a top-level CREATE refused) and once
//! with upstream's (`cyrus_upstream`: flat, `/`), written with the user's
//! own login from the users file (TargetUserName, TargetPassword: Cyrus
//! has no master login that LOGIN takes); the Graph target against the
//! Graph emulator (`graph-emulator`), once in the default write mode
//! (`auto`, which is importMime there) and once in `json`, whose
//! guarantees differ (no byte-identical copy).
//!
//! What the cases check is read back *independently* of the code under
//! test, through each store's own means ([`Fixture`]'s probe):
//!
//! | target                | folders                           | bytes           | flags, keywords and date                            |
//! |-----------------------|-----------------------------------|-----------------|-----------------------------------------------------|
//! | Maildir               | directories                       | the files       | info letters of the file name, mtime                |
//! | IMAP (Dovecot, Cyrus) | `LIST` (tiny client, as the user) | `BODY.PEEK[]`   | `FETCH (FLAGS INTERNALDATE)`                        |
//! | Graph                 | emulator dump                     | importMime only | `isRead`, `flag`, `categories`, `receivedDateTime`  |
//!
//! The IMAP probe works on any fixture server ([`MailServer`]) and names
//! folders as the fixtures do: relative to the personal namespace, UTF-8,
//! `/` between levels (`INBOX.Archive.2024` on Cyrus with Debian's config
//! reads back as `Archive/2024`, as `Archive/2024` does on Dovecot), so
//! one check says where a folder landed on every server.
//!
//! A message too large for the target is refused on its own
//! ([`imap_size_refusal_is_that_message_alone`] on Dovecot with
//! `quota_max_mail_size`, [`cyrus_debian_size_refusal_is_that_message_alone`]
//! and [`cyrus_upstream_size_refusal_is_that_message_alone`] on Cyrus with
//! `maxmessagesize`); the IMAP instantiations' batch case fails a zero-byte
//! message instead, which both servers refuse.
//!
//! Keywords and labels are read back on IMAP and Graph only: the Maildir
//! target stores the system flags in the file name and has nowhere for
//! keywords (that would take Dovecot's `dovecot-keywords` file), so the
//! flags case does not ask it for them.
//!
//! Every target is built in one helper per target at the top
//! ([`maildir_target`], [`imap_target`], [`graph_target`]), all through
//! [`build`], so where target construction lives in the library is a
//! one-line change here.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use cutover::error::ErrorKind;
use cutover::imap::{Compression, Endpoint, Security};
use cutover::model::TargetLogin;
use cutover::model::{Flags, FolderRole, TargetFolder, Upload};
use cutover::secret::Secret;
use cutover::settings::{GraphCredential, GraphSettings, GraphWriteMode, MaildirFolderNames, TargetSettings};
use cutover::target::{Inventoried, Target};

use support::imap::{ImapConn, ListEntry, mutf7_decode};
use support::mailgen;
use support::{Cyrus, CyrusConfig, CyrusOptions, Dovecot, DovecotOptions, MailServer};

/// The mailbox every case writes into.
const USER: &str = "conformance@example.test";
const USER_PASSWORD: &str = "pw-conformance-1";
/// The user's login on Cyrus, whose fixture takes no `@` or `.` in a login
/// (Cyrus maps those into mailbox names).
const CYRUS_LOGIN: &str = "conformance";
const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret-42";
const GRAPH_SECRET: &str = "s3cret-value";
/// The emulator's MaxReceiveSize (and Dovecot's `quota_max_mail_size` in
/// [`imap_size_refusal_is_that_message_alone`]). Every ordinary test message is
/// far below it.
const SIZE_LIMIT: usize = 32 * 1024;

// ----- target construction: one helper per target -------------------------

/// A target from its settings, as `cutover migrate` builds it.
fn build(settings: &TargetSettings) -> Arc<dyn Target> {
    cutover::build::target(settings).unwrap_or_else(|e| panic!("cannot build the target: {e}"))
}

fn maildir_target(root: &Path, folder_names: MaildirFolderNames) -> Arc<dyn Target> {
    build(&TargetSettings::Maildir {
        path: root.to_path_buf(),
        folder_names,
    })
}

/// How the IMAP target logs in.
#[derive(Clone, Copy, Debug)]
enum ImapLogin {
    /// One login for every user in the target settings: Dovecot's master
    /// user (`{email}*admin`).
    Master,
    /// Each user's own login from the users file (TargetUserName,
    /// TargetPassword, see [`Fixture::user`]): no login in the settings.
    PerUser,
}

fn imap_target(port: u16, how: ImapLogin) -> Arc<dyn Target> {
    let (login, password) = match how {
        ImapLogin::Master => (Some(format!("{{email}}*{ADMIN}")), Some(Secret::new(ADMIN_PASSWORD))),
        ImapLogin::PerUser => (None, None),
    };
    build(&TargetSettings::Imap {
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            port,
            security: Security::Plain,
            ca_file: None,
            timeout: Duration::from_secs(30),
            compress: Compression::Auto,
        },
        login,
        password,
        tokens: None,
    })
}

fn graph_target(base: &str, write_mode: GraphWriteMode) -> Arc<dyn Target> {
    build(&TargetSettings::Graph(GraphSettings {
        tenant_id: support::emulator::TENANT.into(),
        client_id: support::emulator::CLIENT.into(),
        credential: GraphCredential::ClientSecret(Secret::new(GRAPH_SECRET)),
        endpoint: base.to_owned(),
        authority: base.to_owned(),
        write_mode,
        max_concurrent_requests: 4,
        max_concurrent_requests_per_app: None,
        requests_per_10_minutes: 10_000,
        upload_bytes_per_5_minutes: 157_286_400,
        limits_time_scale: 1.0,
        timeout: Duration::from_secs(30),
    }))
}

// ----- the cases, instantiated per target ---------------------------------

/// `conformance!(name => fixture)`: one `#[tokio::test]` per contract case
/// in a module called `name`. Multi-threaded, because fixtures and probes
/// do blocking work (Dovecot, the tiny IMAP client, files) inside
/// `block_in_place`.
macro_rules! conformance {
    ($target:ident => $fixture:expr) => {
        mod $target {
            use super::*;
            conformance!(@cases $fixture;
                ensure_folder,
                upload_and_inventory,
                content_reads_back,
                upload_many_with_a_failure,
                find_after_a_lost_answer,
                flags_labels_and_dates_survive,
                capabilities_are_what_the_target_does);
        }
    };
    (@cases $fixture:expr; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fx = $fixture.await;
                let target = fx.target.clone();
                contract::$case(&*target, &fx).await;
                fx.finish();
            }
        )+
    };
}

conformance!(maildir => Fixture::maildir(MaildirFolderNames::Utf7));
conformance!(maildir_utf8 => Fixture::maildir(MaildirFolderNames::Utf8));
conformance!(imap => Fixture::imap());
conformance!(cyrus_debian => Fixture::cyrus(CyrusConfig::Debian));
conformance!(cyrus_upstream => Fixture::cyrus(CyrusConfig::Upstream));
conformance!(graph => Fixture::graph(GraphWriteMode::Auto));
conformance!(graph_json => Fixture::graph(GraphWriteMode::Json));

/// A message over Dovecot's size limit in a batch: Dovecot answers `NO
/// [LIMIT] Mail size is larger than the maximum size allowed by server
/// configuration`, which refuses that one message (not a push-back that
/// would fail the whole batch); the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_size_refusal_is_that_message_alone() {
    let fx = Fixture::imap_with_size_limit().await;
    let target = fx.target.clone();
    contract::upload_many_with_a_failure(&*target, &fx).await;
    fx.finish();
}

/// A message over Cyrus's `maxmessagesize` in a batch (Debian's config):
/// refused on its own, the others stored. Cyrus announces the limit as
/// `APPENDLIMIT=32768` and answers an APPEND over it with `NO [TOOBIG]
/// Message size exceeds fixed limit` before the literal when the literal
/// is synchronizing; a non-synchronizing one (LITERAL+) gets that NO, then
/// `* BYE [TOOBIG] Message size exceeds fixed limit`, and the connection
/// is closed without the literal being read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_debian_size_refusal_is_that_message_alone() {
    let fx = Fixture::cyrus_with_size_limit(CyrusConfig::Debian).await;
    let target = fx.target.clone();
    contract::upload_many_with_a_failure(&*target, &fx).await;
    fx.finish();
}

/// The same on Cyrus with upstream's config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_upstream_size_refusal_is_that_message_alone() {
    let fx = Fixture::cyrus_with_size_limit(CyrusConfig::Upstream).await;
    let target = fx.target.clone();
    contract::upload_many_with_a_failure(&*target, &fx).await;
    fx.finish();
}

// ----- the contract --------------------------------------------------------

mod contract {
    //! The cases, each an async function of the target and its fixture.

    use super::*;

    const ROLES: [FolderRole; 6] = [
        FolderRole::Inbox,
        FolderRole::Sent,
        FolderRole::Drafts,
        FolderRole::Trash,
        FolderRole::Archive,
        FolderRole::Junk,
    ];

    /// Folders by role and by a nested non-ASCII path: each call with or
    /// without the reference gives the same reference, in this session and
    /// in a fresh one, and creates nothing twice; a folder never written
    /// lists as empty and `inventory` does not create it.
    pub async fn ensure_folder(target: &dyn Target, fx: &Fixture) {
        let mut s = target.open(&fx.user).await.unwrap();
        let before = fx.folders().await;

        let never = folder(None, &["Nie geschrieben", "Ünïcode"]);
        assert_eq!(
            s.inventory(&never, None).await.unwrap(),
            vec![],
            "a folder never written"
        );
        assert_eq!(fx.folders().await, before, "inventory created a folder");

        let mut wanted: Vec<TargetFolder> = ROLES.iter().map(|r| folder(Some(*r), &[])).collect();
        wanted.push(folder(None, &["Projekte 2026", "Überblick ✓ 日本"]));
        wanted.push(folder(Some(FolderRole::Inbox), &["Listen", "café"]));
        let mut refs = Vec::new();
        for f in &wanted {
            let r = s.ensure_folder(f, None).await.unwrap();
            assert_eq!(
                s.ensure_folder(f, Some(&r)).await.unwrap(),
                r,
                "{f:?} with its reference"
            );
            assert_eq!(s.ensure_folder(f, None).await.unwrap(), r, "{f:?} again");
            assert!(fx.has_folder(&r).await, "{f:?} -> {r:?} is not in the store");
            fx.check_folder_name(f, &r).await;
            assert_eq!(s.inventory(f, Some(&r)).await.unwrap(), vec![], "{f:?} by reference");
            assert_eq!(s.inventory(f, None).await.unwrap(), vec![], "{f:?} by path");
            refs.push(r);
        }
        let distinct: BTreeSet<&String> = refs.iter().collect();
        assert_eq!(distinct.len(), refs.len(), "one folder each: {refs:?}");
        let created = fx.folders().await;
        assert!(created.len() > before.len(), "the nested folders were created");
        s.close().await;

        // A fresh session has no cache: it finds the same folders.
        let mut fresh = target.open(&fx.user).await.unwrap();
        for (f, r) in wanted.iter().zip(&refs) {
            assert_eq!(
                &fresh.ensure_folder(f, None).await.unwrap(),
                r,
                "{f:?} in a fresh session"
            );
        }
        assert_eq!(fresh.inventory(&never, None).await.unwrap(), vec![]);
        assert_eq!(fx.folders().await, created, "a second session created folders again");
        fresh.close().await;
    }

    /// N messages, one of them without a Message-ID and one whose source
    /// reported a size other than its byte count, are listed exactly once
    /// each with their Message-ID and the size the target documents; the
    /// store holds exactly them, byte-identical where it keeps bytes.
    pub async fn upload_and_inventory(target: &dyn Target, fx: &Fixture) {
        let f = folder(None, &["Projekte 2026", "Überblick ✓ 日本"]);
        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let mut uploads = messages("inventory", 21, 6);
        uploads[2] = without_message_id(&uploads[2]);
        // A source (Exchange, say) may report an RFC822.SIZE that is not
        // the byte count of what it serves.
        uploads[4].source_size += 11;
        assert!(uploads.iter().all(|u| u.raw.len() < SIZE_LIMIT));

        let mut ids = BTreeSet::new();
        for u in &uploads {
            let id = s.upload(&r, u).await.unwrap();
            assert!(!id.is_empty(), "the target names what it stored");
            assert!(ids.insert(id.clone()), "id {id:?} given twice");
        }
        let expected = fx.expected_inventory(&uploads);
        assert_eq!(
            sorted(s.inventory(&f, Some(&r)).await.unwrap()),
            expected,
            "by reference"
        );
        assert_eq!(sorted(s.inventory(&f, None).await.unwrap()), expected, "by path");
        s.close().await;

        let mut fresh = target.open(&fx.user).await.unwrap();
        assert_eq!(
            sorted(fresh.inventory(&f, None).await.unwrap()),
            expected,
            "fresh session"
        );
        // Another folder does not show them.
        let inbox = folder(Some(FolderRole::Inbox), &[]);
        assert_eq!(fresh.inventory(&inbox, None).await.unwrap(), vec![], "the inbox");
        fresh.close().await;

        let stored = fx.stored(&r).await;
        assert_stored_once(&stored, &uploads);
    }

    /// Every stored message reads back as its source's content, and a
    /// source that differs (another message, an attachment more) does not:
    /// what `cutover verify` relies on.
    pub async fn content_reads_back(target: &dyn Target, fx: &Fixture) {
        let f = folder(None, &["Content"]);
        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let uploads = messages("content", 33, 8);
        for u in &uploads {
            s.upload(&r, u).await.unwrap();
        }
        let listed = s.inventory(&f, Some(&r)).await.unwrap();
        assert_eq!(listed.len(), uploads.len());
        let mut attachments_seen = 0;
        for u in &uploads {
            let item = listed
                .iter()
                .find(|i| i.message_id == u.message_id)
                .expect("listed by Message-ID");
            assert!(!item.id.is_empty(), "the listing names each message");
            assert_eq!(
                s.compare_content(&f, Some(&r), item, &u.raw).await.unwrap(),
                None,
                "{:?} reads back as it was sent",
                u.message_id
            );
            let text = String::from_utf8_lossy(&u.raw);
            if text.contains("Content-Disposition: attachment") {
                attachments_seen += 1;
            }
            // Another message's content: not this copy.
            let other =
                &uploads[(uploads.iter().position(|x| x.message_id == u.message_id).unwrap() + 1) % uploads.len()];
            let why = s
                .compare_content(&f, Some(&r), item, &other.raw)
                .await
                .unwrap()
                .expect("another message is not the copy");
            assert!(!why.is_empty());
        }
        assert!(attachments_seen > 0, "the generated mail has attachments to compare");
        // A source with one more attachment than the copy has.
        let u = &uploads[0];
        let item = listed.iter().find(|i| i.message_id == u.message_id).unwrap();
        let more = with_extra_attachment(&u.raw);
        let why = s
            .compare_content(&f, Some(&r), item, &more)
            .await
            .unwrap()
            .expect("a source with another attachment is not the copy");
        assert!(!why.is_empty());
        s.close().await;
    }

    /// A batch with one message the target must refuse or fail: one result
    /// per message in order (or, after an error that ends the batch, none
    /// after it), the failed one not stored, every other stored once.
    pub async fn upload_many_with_a_failure(target: &dyn Target, fx: &Fixture) {
        let f = folder(None, &["Batch"]);
        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let mut batch = messages("batch", 31, 5);
        let bad = 2;
        batch[bad] = fx.failing_message(&r, &batch[bad]).await;

        let results = s.upload_many(&r, &batch).await;
        assert!(
            results.len() > bad && results.len() <= batch.len(),
            "{} results for {} messages: {results:?}",
            results.len(),
            batch.len()
        );
        let err = results[bad]
            .as_ref()
            .expect_err("the failing message is reported failed");
        match fx.failure {
            Failure::OverSize | Failure::Empty => assert!(
                matches!(err.kind, ErrorKind::Refused | ErrorKind::Item),
                "a message the target refuses is this message's failure, not the mailbox's: {err:?}"
            ),
            Failure::Obstructed => assert_eq!(err.kind, ErrorKind::Fatal, "{err:?}"),
        }
        let ends_batch = err.is_retryable() || err.kind == ErrorKind::Fatal;
        if ends_batch {
            assert_eq!(
                results.len(),
                bad + 1,
                "an error that ends the batch comes last: {results:?}"
            );
        } else {
            assert_eq!(results.len(), batch.len(), "one result per message: {results:?}");
        }
        let mut ids = BTreeSet::new();
        for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != bad) {
            let id = r.as_ref().unwrap_or_else(|e| panic!("message {i} failed: {e:?}"));
            assert!(!id.is_empty() && ids.insert(id.clone()), "message {i}: id {id:?}");
        }
        s.close().await;

        let stored = fx.stored(&r).await;
        if let Some(id) = batch[bad].message_id.as_deref() {
            assert_eq!(count_id(&stored, id), 0, "the failed message was stored");
        }
        // Messages after a batch-ending error are unsettled: stored at
        // most once, which a later `find` sorts out.
        let mut present: Vec<Upload> = (0..results.len())
            .filter(|i| *i != bad)
            .map(|i| batch[i].clone())
            .collect();
        for u in &batch[results.len()..] {
            match count_id(&stored, u.message_id.as_deref().unwrap()) {
                0 => {}
                1 => present.push(u.clone()),
                n => panic!("an unsettled message is stored {n} times"),
            }
        }
        assert_stored_once(&stored, &present);
        let mut s = target.open(&fx.user).await.unwrap();
        assert_eq!(
            sorted(s.inventory(&f, Some(&r)).await.unwrap()),
            fx.expected_inventory(&present)
        );
        s.close().await;
    }

    /// After a run that stored messages but lost the answers, `find` with
    /// the same upload returns what was stored (also for a message without
    /// a Message-ID), `None` for what was never stored, for a different
    /// message sharing the Message-ID, and in another folder; nothing is
    /// duplicated.
    pub async fn find_after_a_lost_answer(target: &dyn Target, fx: &Fixture) {
        let f = folder(Some(FolderRole::Inbox), &["Resumed"]);
        let mut msgs = messages("find", 41, 3);
        msgs[1] = without_message_id(&msgs[1]);
        let never = msgs.pop().unwrap();
        let twin = {
            // Same Message-ID as the first, other bytes, date and source UID.
            let other = messages("find-twin", 42, 1).pop().unwrap();
            let id = msgs[0].message_id.clone().unwrap();
            let raw = with_message_id(&other.raw, &id);
            upload("find-twin", 99, raw, other.internal_date + 3_600, "")
        };
        assert_eq!(twin.message_id, msgs[0].message_id);

        let mut crashed = target.open(&fx.user).await.unwrap();
        let r = crashed.ensure_folder(&f, None).await.unwrap();
        let mut ids = Vec::new();
        for m in &msgs {
            ids.push(crashed.upload(&r, m).await.unwrap());
        }
        // The run dies: no close, the ids never reach the checkpoint.
        drop(crashed);

        let mut s = target.open(&fx.user).await.unwrap();
        assert_eq!(s.ensure_folder(&f, Some(&r)).await.unwrap(), r);
        for (m, id) in msgs.iter().zip(&ids) {
            let found = s.find(&r, m).await.unwrap();
            let found = found.unwrap_or_else(|| panic!("{:?} was stored but not found", m.message_id));
            assert!(fx.same_id(id, &found), "stored as {id:?}, found as {found:?}");
            // Asking again changes nothing.
            let again = s.find(&r, m).await.unwrap();
            assert_eq!(again.as_deref(), Some(found.as_str()), "a second find");
        }
        assert_eq!(s.find(&r, &never).await.unwrap(), None, "never uploaded");
        assert_eq!(
            s.find(&r, &twin).await.unwrap(),
            None,
            "another message with the same Message-ID"
        );
        let inbox = s
            .ensure_folder(&folder(Some(FolderRole::Inbox), &[]), None)
            .await
            .unwrap();
        assert_eq!(s.find(&inbox, &msgs[0]).await.unwrap(), None, "another folder");
        assert_eq!(
            sorted(s.inventory(&f, Some(&r)).await.unwrap()),
            fx.expected_inventory(&msgs)
        );
        s.close().await;
        assert_stored_once(&fx.stored(&r).await, &msgs);
    }

    /// `\Seen`, `\Flagged`, a keyword, a label and INTERNALDATE, through
    /// both `upload_many` and `upload`, read back through the store's own
    /// means (keywords and labels where the store keeps them; see the
    /// module docs).
    pub async fn flags_labels_and_dates_survive(target: &dyn Target, fx: &Fixture) {
        let f = folder(None, &["Flags"]);
        let mut batch = messages("flags", 51, 4);
        batch[0].flags = Flags::from_wire("\\Seen Work");
        batch[1].flags = Flags::from_wire("\\Flagged");
        batch[1].labels = vec!["Clients".into()];
        batch[2].flags = Flags::default();
        batch[3].flags = Flags::from_wire("\\Flagged \\Seen \\Answered");
        let wanted: [(bool, bool, &[&str]); 4] = [
            (true, false, &["Work"]),
            (false, true, &["Clients"]),
            (false, false, &[]),
            (true, true, &[]),
        ];

        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let results = s.upload_many(&r, &batch[..3]).await;
        assert_eq!(results.len(), 3, "{results:?}");
        for (i, result) in results.into_iter().enumerate() {
            result.unwrap_or_else(|e| panic!("message {i}: {e:?}"));
        }
        s.upload(&r, &batch[3]).await.unwrap();
        s.close().await;

        let stored = fx.stored(&r).await;
        assert_eq!(stored.len(), batch.len(), "{stored:#?}");
        for (u, (seen, flagged, keywords)) in batch.iter().zip(wanted) {
            let id = u.message_id.as_deref().unwrap();
            let m = stored
                .iter()
                .find(|m| m.message_id.as_deref() == Some(id))
                .unwrap_or_else(|| panic!("{id} not stored: {stored:#?}"));
            assert_eq!((m.seen, m.flagged), (seen, flagged), "{id}: (seen, flagged)");
            assert_eq!(m.date, u.internal_date, "{id}: INTERNALDATE");
            if let Some(have) = &m.keywords {
                let want: BTreeSet<String> = keywords.iter().map(|k| k.to_string()).collect();
                assert_eq!(have, &want, "{id}: keywords and labels");
            }
        }

        // The listing reports the flags the target says it keeps, as the
        // copies carry them: what verify compares with the source's.
        let kept = target.capabilities().listed_flags;
        assert!(
            kept.contains(&"\\Seen") && kept.contains(&"\\Flagged"),
            "every target keeps the read state and the flag: {kept:?}"
        );
        let mut s = target.open(&fx.user).await.unwrap();
        let listed = s.inventory(&f, Some(&r)).await.unwrap();
        s.close().await;
        for (u, (seen, flagged, _)) in batch.iter().zip(wanted) {
            let id = u.message_id.as_deref().unwrap();
            let item = listed
                .iter()
                .find(|i| i.message_id.as_deref() == Some(id))
                .unwrap_or_else(|| panic!("{id} not listed: {listed:#?}"));
            assert_eq!(
                (item.flags.seen(), item.flags.flagged()),
                (seen, flagged),
                "{id}: listed (seen, flagged)"
            );
            for flag in kept {
                assert_eq!(item.flags.has(flag), u.flags.has(flag), "{id}: listed {flag}: {item:?}");
            }
        }
    }

    /// `list` must be declared and work; `move_messages`, `update_flags`,
    /// `delete` and `rename_folders`, where declared, must do what their
    /// cases below check; kinds other than mail may only be declared once
    /// this suite covers them (a placeholder fails until then).
    pub async fn capabilities_are_what_the_target_does(target: &dyn Target, fx: &Fixture) {
        let caps = target.capabilities();
        assert!(
            target.describe().starts_with(fx.describes_as),
            "describe(): {:?}",
            target.describe()
        );
        assert!(caps.stores(cutover::model::ItemKind::Mail), "{caps:?}");
        assert!(caps.list, "every target of cutover can list a folder (verify, check)");

        let f = folder(None, &["Listed"]);
        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let uploads = messages("caps", 61, 2);
        for u in &uploads {
            s.upload(&r, u).await.unwrap();
        }
        assert_eq!(
            sorted(s.inventory(&f, Some(&r)).await.unwrap()),
            fx.expected_inventory(&uploads),
            "list is declared, so inventory works"
        );
        s.close().await;

        if caps.move_messages {
            move_messages_contract(target, fx).await;
        }
        if caps.update_flags {
            update_flags_contract(target, fx).await;
        }
        if caps.delete {
            delete_contract(target, fx).await;
        }
        if caps.rename_folders {
            rename_folders_contract(target, fx).await;
        }
        for kind in caps.kinds {
            if *kind != cutover::model::ItemKind::Mail {
                other_kind_contract(*kind);
            }
        }
    }

    // Each declared capability is covered here: stored through the target,
    // operated on through the target, read back through the probe. A kind
    // of item other than mail is a placeholder that fails until covered.

    /// The probe's view of `expected` in a folder: each stored once (bytes
    /// where the store keeps them), with its read state, flag, keywords and
    /// labels (where the store keeps them) and date as `expected` says.
    #[track_caller]
    fn assert_holds(stored: &[Stored], expected: &[&Upload], step: &str) {
        assert_eq!(
            stored.len(),
            expected.len(),
            "{step}: messages in the folder: {stored:#?}"
        );
        let owned: Vec<Upload> = expected.iter().map(|u| (*u).clone()).collect();
        assert_stored_once(stored, &owned);
        for u in expected {
            let id = u.message_id.as_deref().unwrap();
            let m = stored
                .iter()
                .find(|m| m.message_id.as_deref() == Some(id))
                .unwrap_or_else(|| panic!("{step}: {id} not stored: {stored:#?}"));
            assert_eq!(
                (m.seen, m.flagged),
                (u.flags.has("\\Seen"), u.flags.has("\\Flagged")),
                "{step}: {id}: (seen, flagged)"
            );
            assert_eq!(m.date, u.internal_date, "{step}: {id}: the date stays");
            if let Some(have) = &m.keywords {
                let want: BTreeSet<String> = u
                    .flags
                    .0
                    .iter()
                    .filter(|f| !f.starts_with('\\'))
                    .chain(&u.labels)
                    .cloned()
                    .collect();
                assert_eq!(have, &want, "{step}: {id}: keywords and labels");
            }
        }
    }

    /// `move_message`, where declared: a copy filed into another folder
    /// (below the inbox, a non-ASCII name) leaves its folder and is in the
    /// other once, with its bytes, flags, keywords and date; the id returned
    /// names it there (`find` returns it, `update_flags` reaches it) and the
    /// old id no longer names anything in the old folder (Graph gives a new
    /// id, Maildir keeps the file name). Moving it again by its old id
    /// changes nothing (an item error, or the same id where the target sees
    /// that the move was done). In a fresh session it is moved back, and
    /// another copy into a role folder; the other copies never move.
    async fn move_messages_contract(target: &dyn Target, fx: &Fixture) {
        let caps = target.capabilities();
        let from_f = folder(None, &["Ablage", "Eingang ✓"]);
        let to_f = folder(Some(FolderRole::Inbox), &["Erledigt 2026 ✓"]);
        let mut msgs = messages("move", 81, 3);
        msgs[0].flags = Flags::from_wire("\\Seen \\Flagged Work");
        msgs[0].labels = vec!["Clients".into()];
        msgs[1].flags = Flags::from_wire("\\Seen");
        let mut s = target.open(&fx.user).await.unwrap();
        let from = s.ensure_folder(&from_f, None).await.unwrap();
        let to = s.ensure_folder(&to_f, None).await.unwrap();
        let mut ids = Vec::new();
        for m in &msgs {
            ids.push(s.upload(&from, m).await.unwrap());
        }
        assert_holds(&fx.stored(&from).await, &[&msgs[0], &msgs[1], &msgs[2]], "as uploaded");

        let moved = s.move_message(&from, &ids[0], &to).await.unwrap();
        assert!(!moved.is_empty(), "the target names the moved copy");
        match &fx.store {
            Store::Graph { .. } => assert_ne!(moved, ids[0], "Exchange gives a moved message a new id"),
            Store::Maildir { .. } => assert_eq!(moved, ids[0], "the file keeps its name"),
            Store::Imap { .. } => {}
        }
        assert_holds(&fx.stored(&from).await, &[&msgs[1], &msgs[2]], "moved out");
        assert_holds(&fx.stored(&to).await, &[&msgs[0]], "moved in");
        let found = s.find(&to, &msgs[0]).await.unwrap().expect("found where it went");
        assert!(fx.same_id(&moved, &found), "moved as {moved:?}, found as {found:?}");
        assert_eq!(s.find(&from, &msgs[0]).await.unwrap(), None, "not where it was");

        // The new id reaches the copy; the old one names nothing there.
        let mut current = moved.clone();
        let mut moved_copy = msgs[0].clone();
        if caps.update_flags {
            moved_copy.flags = Flags::from_wire("\\Flagged");
            moved_copy.labels = Vec::new();
            current = s.update_flags(&to, &moved, &moved_copy.flags, &[]).await.unwrap();
            assert_holds(&fx.stored(&to).await, &[&moved_copy], "re-flagged by the new id");
            let e = s
                .update_flags(&from, &ids[0], &Flags::from_wire("\\Seen"), &[])
                .await
                .unwrap_err();
            assert_eq!(
                e.kind,
                ErrorKind::Item,
                "the old id names nothing in the old folder: {e:?}"
            );
        }

        // Moved again by its old id: nothing changes.
        match s.move_message(&from, &ids[0], &to).await {
            Err(e) => assert_eq!(e.kind, ErrorKind::Item, "{e:?}"),
            Ok(again) => assert!(fx.same_id(&current, &again), "moved again as {again:?}, is {current:?}"),
        }
        assert_holds(
            &fx.stored(&from).await,
            &[&msgs[1], &msgs[2]],
            "moved again: the old folder",
        );
        assert_holds(&fx.stored(&to).await, &[&moved_copy], "moved again: the new folder");
        s.close().await;

        // A fresh session: back where it was, and another into a role folder.
        let mut fresh = target.open(&fx.user).await.unwrap();
        let archive_f = folder(Some(FolderRole::Archive), &[]);
        let archive = fresh.ensure_folder(&archive_f, None).await.unwrap();
        let back = fresh.move_message(&to, &current, &from).await.unwrap();
        assert!(!back.is_empty());
        let filed = fresh.move_message(&from, &ids[2], &archive).await.unwrap();
        assert!(!filed.is_empty());
        assert_holds(&fx.stored(&from).await, &[&moved_copy, &msgs[1]], "moved back");
        assert_holds(&fx.stored(&to).await, &[], "moved back: nothing left");
        assert_holds(&fx.stored(&archive).await, &[&msgs[2]], "filed in a role folder");
        let found = fresh.find(&from, &msgs[0]).await.unwrap().expect("found back home");
        assert!(fx.same_id(&back, &found), "moved back as {back:?}, found as {found:?}");
        let found = fresh
            .find(&archive, &msgs[2])
            .await
            .unwrap()
            .expect("found in the role folder");
        assert!(fx.same_id(&filed, &found), "filed as {filed:?}, found as {found:?}");
        assert_eq!(
            sorted(fresh.inventory(&from_f, Some(&from)).await.unwrap()),
            fx.expected_inventory(&[msgs[0].clone(), msgs[1].clone()])
        );
        assert_eq!(fresh.inventory(&to_f, Some(&to)).await.unwrap(), vec![]);
        assert_eq!(
            sorted(fresh.inventory(&archive_f, Some(&archive)).await.unwrap()),
            fx.expected_inventory(&msgs[2..])
        );
        fresh.close().await;
    }

    /// `update_flags`, where declared: a copy stored with `\Flagged`, a
    /// keyword and a label gets `\Seen`, `\Answered`, another keyword and
    /// another label instead, then the same again, then nothing, then
    /// `\Flagged` back in a fresh session, each time read back through the
    /// store's own means (keywords and labels where the store keeps them;
    /// see the module docs). The copy keeps its bytes and date, is never
    /// duplicated, the other copy in the folder keeps its flags, and each
    /// returned id names the copy for the next call and is what `find`
    /// returns (a Maildir file is renamed; IMAP and Graph keep their ids).
    async fn update_flags_contract(target: &dyn Target, fx: &Fixture) {
        let f = folder(None, &["Reflagged"]);
        let mut msgs = messages("reflag", 71, 2);
        msgs[0].flags = Flags::from_wire("\\Flagged Work");
        msgs[0].labels = vec!["Clients".into()];
        msgs[1].flags = Flags::from_wire("\\Seen Other");
        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let uploaded = s.upload(&r, &msgs[0]).await.unwrap();
        s.upload(&r, &msgs[1]).await.unwrap();

        // (seen, flagged, keywords and labels) of the copy, after each step.
        let expect = |stored: &[Stored], seen: bool, flagged: bool, keywords: &[&str], step: &str| {
            assert_stored_once(stored, &msgs);
            for (u, (seen, flagged, keywords)) in msgs
                .iter()
                .zip([(seen, flagged, keywords), (true, false, &["Other"][..])])
            {
                let id = u.message_id.as_deref().unwrap();
                let m = stored
                    .iter()
                    .find(|m| m.message_id.as_deref() == Some(id))
                    .unwrap_or_else(|| panic!("{step}: {id} not stored: {stored:#?}"));
                assert_eq!((m.seen, m.flagged), (seen, flagged), "{step}: {id}: (seen, flagged)");
                assert_eq!(m.date, u.internal_date, "{step}: {id}: the date stays");
                if let Some(have) = &m.keywords {
                    let want: BTreeSet<String> = keywords.iter().map(|k| k.to_string()).collect();
                    assert_eq!(have, &want, "{step}: {id}: keywords and labels");
                }
            }
        };
        expect(&fx.stored(&r).await, false, true, &["Work", "Clients"], "as uploaded");

        let new = Flags::from_wire("\\Seen \\Answered Home");
        let labels = vec!["Family".to_owned()];
        let id = s.update_flags(&r, &uploaded, &new, &labels).await.unwrap();
        assert!(!id.is_empty(), "the target names the copy");
        expect(
            &fx.stored(&r).await,
            true,
            false,
            &["Home", "Family"],
            "\\Seen added, \\Flagged taken away",
        );

        let again = s.update_flags(&r, &id, &new, &labels).await.unwrap();
        assert_eq!(again, id, "the same flags again change nothing");
        expect(&fx.stored(&r).await, true, false, &["Home", "Family"], "the same again");

        let id = s.update_flags(&r, &again, &Flags::default(), &[]).await.unwrap();
        expect(&fx.stored(&r).await, false, false, &[], "none at all");
        s.close().await;
        // A listing sees the flags as they are now, not as uploaded.
        let mut lister = target.open(&fx.user).await.unwrap();
        let listed = lister.inventory(&f, Some(&r)).await.unwrap();
        lister.close().await;
        let flags_of = |u: &Upload| {
            let item = listed
                .iter()
                .find(|i| i.message_id == u.message_id)
                .unwrap_or_else(|| panic!("not listed: {listed:#?}"));
            (item.flags.seen(), item.flags.flagged())
        };
        assert_eq!(flags_of(&msgs[0]), (false, false), "listed after the update");
        assert_eq!(flags_of(&msgs[1]), (true, false), "the other copy as uploaded");

        let mut fresh = target.open(&fx.user).await.unwrap();
        assert_eq!(fresh.ensure_folder(&f, Some(&r)).await.unwrap(), r);
        let id = fresh
            .update_flags(&r, &id, &Flags::from_wire("\\Flagged"), &[])
            .await
            .unwrap();
        expect(
            &fx.stored(&r).await,
            false,
            true,
            &[],
            "\\Flagged back, in a fresh session",
        );
        let found = fresh
            .find(&r, &msgs[0])
            .await
            .unwrap()
            .expect("the copy is found after its flags changed");
        assert!(fx.same_id(&id, &found), "updated as {id:?}, found as {found:?}");
        assert_eq!(
            sorted(fresh.inventory(&f, Some(&r)).await.unwrap()),
            fx.expected_inventory(&msgs),
            "listed once each"
        );
        fresh.close().await;
    }

    /// `delete_message`, where declared: the copy is gone from the store
    /// and `find` no longer finds it; deleting it again is no error; the
    /// other copies stay, with their flags, also one that another client
    /// marked `\Deleted` without expunging it (IMAP: only the copy's UID
    /// is expunged, never the folder); a fresh session deletes by an id
    /// from an earlier one.
    async fn delete_contract(target: &dyn Target, fx: &Fixture) {
        /// Another IMAP client marks a message `\Deleted` and leaves it.
        fn mark_deleted(server: &dyn MailServer, login: &str, reference: &str, message_id: &str) {
            let relative = imap_relative(server, &mutf7_decode(reference)).expect("a folder of the mailbox");
            let mailbox = server.mailbox_name(&relative);
            let mut c = imap_login(server, login);
            let uid = c
                .fetch_all(&mailbox)
                .into_iter()
                .find(|m| mailgen::message_id(&m.raw).as_deref() == Some(message_id))
                .expect("the message is stored")
                .uid;
            c.command(&format!(
                "SELECT {}",
                support::imap::quote(&support::imap::mutf7_encode(&mailbox))
            ))
            .expect_ok("SELECT");
            c.command(&format!("UID STORE {uid} +FLAGS (\\Deleted)"))
                .expect_ok("UID STORE");
            c.logout();
        }

        let f = folder(None, &["Gelöscht ✓"]);
        let mut msgs = messages("delete", 91, 3);
        msgs[2].flags = Flags::from_wire("\\Seen");
        let mut s = target.open(&fx.user).await.unwrap();
        let r = s.ensure_folder(&f, None).await.unwrap();
        let mut ids = Vec::new();
        for m in &msgs {
            ids.push(s.upload(&r, m).await.unwrap());
        }
        if let Store::Imap { server, login } = &fx.store {
            let id = msgs[2].message_id.clone().unwrap();
            tokio::task::block_in_place(|| mark_deleted(server.as_ref(), login, &r, &id));
        }

        s.delete_message(&r, &ids[1]).await.unwrap();
        assert_holds(&fx.stored(&r).await, &[&msgs[0], &msgs[2]], "one deleted");
        assert_eq!(s.find(&r, &msgs[1]).await.unwrap(), None, "deleted: not found");
        s.delete_message(&r, &ids[1])
            .await
            .unwrap_or_else(|e| panic!("a copy already gone is no error: {e:?}"));
        assert_holds(&fx.stored(&r).await, &[&msgs[0], &msgs[2]], "deleted again");
        s.close().await;

        let mut fresh = target.open(&fx.user).await.unwrap();
        fresh.delete_message(&r, &ids[0]).await.unwrap();
        assert_holds(&fx.stored(&r).await, &[&msgs[2]], "another deleted, in a fresh session");
        assert_eq!(
            sorted(fresh.inventory(&f, Some(&r)).await.unwrap()),
            fx.expected_inventory(&msgs[2..])
        );
        let found = fresh.find(&r, &msgs[2]).await.unwrap().expect("the copy left is found");
        assert!(
            fx.same_id(&ids[2], &found),
            "stored as {:?}, found as {found:?}",
            ids[2]
        );
        fresh.close().await;
    }

    /// `rename_folder`, where declared: a folder holding copies, with a
    /// subfolder holding one, is renamed and moved below a parent that does
    /// not exist yet (made), then, in a fresh session, below the inbox; each
    /// time the new reference is where `ensure_folder` puts that folder, the
    /// copies (and the subfolder with its copy) are there, found under their
    /// ids, with their flags; nothing is left at the old place and nothing
    /// is copied. Renaming to where it is changes nothing; onto another
    /// folder, the inbox, or into itself is an item error that changes
    /// nothing.
    async fn rename_folders_contract(target: &dyn Target, fx: &Fixture) {
        let old = folder(None, &["Umbenennen", "Alt ✓"]);
        let old_child = folder(None, &["Umbenennen", "Alt ✓", "Kind"]);
        let new = folder(None, &["Umbenannt 2026", "Neu ✓"]);
        let new_child = folder(None, &["Umbenannt 2026", "Neu ✓", "Kind"]);
        let mut msgs = messages("rename", 101, 3);
        msgs[0].flags = Flags::from_wire("\\Seen Work");
        msgs[2].flags = Flags::from_wire("\\Flagged");
        let (top, below) = (&[&msgs[0], &msgs[1]], &[&msgs[2]]);

        let mut s = target.open(&fx.user).await.unwrap();
        let r_old = s.ensure_folder(&old, None).await.unwrap();
        let r_old_child = s.ensure_folder(&old_child, None).await.unwrap();
        let mut ids = Vec::new();
        for m in &msgs[..2] {
            ids.push(s.upload(&r_old, m).await.unwrap());
        }
        ids.push(s.upload(&r_old_child, &msgs[2]).await.unwrap());
        let before = fx.folders().await;

        let r_new = s.rename_folder(&r_old, &new).await.unwrap();
        assert!(fx.has_folder(&r_new).await, "{r_new:?} is not in the store");
        fx.check_folder_name(&new, &r_new).await;
        assert_holds(&fx.stored(&r_new).await, top, "renamed");
        let r_new_child = s.ensure_folder(&new_child, None).await.unwrap();
        assert_holds(&fx.stored(&r_new_child).await, below, "its subfolder came along");
        let after = fx.folders().await;
        assert!(
            after.len() <= before.len() + 1,
            "renamed, not copied (at most the new parent is new): {before:?} -> {after:?}"
        );
        for (i, (m, id)) in msgs.iter().zip(&ids).enumerate() {
            let r = if i == 2 { &r_new_child } else { &r_new };
            let found = s.find(r, m).await.unwrap().expect("found in the renamed folder");
            assert!(
                fx.same_id(id, &found),
                "stored as {id:?}, found as {found:?} after the rename"
            );
        }
        s.close().await;

        // A fresh session (nothing cached) finds them at the new place only.
        let mut fresh = target.open(&fx.user).await.unwrap();
        assert_eq!(
            fresh.inventory(&old, None).await.unwrap(),
            vec![],
            "nothing at the old place"
        );
        assert_eq!(fresh.inventory(&old_child, None).await.unwrap(), vec![]);
        assert_eq!(
            sorted(fresh.inventory(&new, None).await.unwrap()),
            fx.expected_inventory(&msgs[..2])
        );
        assert_eq!(
            sorted(fresh.inventory(&new_child, None).await.unwrap()),
            fx.expected_inventory(&msgs[2..])
        );
        assert_eq!(fresh.ensure_folder(&new, None).await.unwrap(), r_new);
        assert_eq!(fresh.ensure_folder(&new_child, None).await.unwrap(), r_new_child);
        assert_eq!(
            fx.folders().await,
            after,
            "the renamed folders are found, not made again"
        );

        // Below the inbox; to where it is already, nothing changes.
        let home = folder(Some(FolderRole::Inbox), &["Zurück"]);
        let home_child = folder(Some(FolderRole::Inbox), &["Zurück", "Kind"]);
        let r_home = fresh.rename_folder(&r_new, &home).await.unwrap();
        fx.check_folder_name(&home, &r_home).await;
        assert_eq!(
            fresh.rename_folder(&r_home, &home).await.unwrap(),
            r_home,
            "renamed to where it is: nothing changes"
        );
        assert_holds(&fx.stored(&r_home).await, top, "below the inbox");
        let r_home_child = fresh.ensure_folder(&home_child, None).await.unwrap();
        assert_holds(&fx.stored(&r_home_child).await, below, "below the inbox: the subfolder");
        assert_eq!(
            fresh.inventory(&new, None).await.unwrap(),
            vec![],
            "nothing left behind"
        );

        // Refused, and nothing changes.
        let r_taken = fresh.ensure_folder(&folder(None, &["Besetzt"]), None).await.unwrap();
        let inbox = fresh
            .ensure_folder(&folder(Some(FolderRole::Inbox), &[]), None)
            .await
            .unwrap();
        let snapshot = fx.folders().await;
        let refused = [
            (&r_home, folder(None, &["Besetzt"]), "onto another folder"),
            (&inbox, folder(None, &["Kein Eingang"]), "the inbox"),
            (
                &r_home,
                folder(Some(FolderRole::Inbox), &["Zurück", "Kind", "Tiefer"]),
                "into itself",
            ),
        ];
        for (known, to, why) in &refused {
            let e = fresh.rename_folder(known, to).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Item, "{why}: {e:?}");
        }
        assert_eq!(fx.folders().await, snapshot, "a refused rename changes nothing");
        assert_holds(&fx.stored(&r_home).await, top, "after the refusals");
        assert_holds(&fx.stored(&r_taken).await, &[], "after the refusals: the other folder");
        fresh.close().await;
    }

    fn other_kind_contract(kind: cutover::model::ItemKind) {
        panic!("storing {kind:?} declared but not covered by the conformance suite");
    }
}

// ----- test data -------------------------------------------------------------

fn folder(anchor: Option<FolderRole>, path: &[&str]) -> TargetFolder {
    TargetFolder {
        anchor,
        path: path.iter().map(|p| p.to_string()).collect(),
    }
}

/// An upload as `run` makes one: key from mailbox, folder, UIDVALIDITY and
/// UID; Message-ID from the header; the source size the byte count.
fn upload(folder: &str, uid: u32, raw: Vec<u8>, internal_date: i64, flags: &str) -> Upload {
    Upload {
        message_id: mailgen::message_id(&raw),
        source_size: raw.len() as u64,
        raw: raw.into(),
        flags: Flags::from_wire(flags),
        internal_date,
        key: cutover::model::MessageKey {
            user: USER.into(),
            folder: folder.into(),
            uid_validity: 1_700_000_000,
            uid,
        },
        labels: Vec::new(),
    }
}

/// `n` generated messages (distinct Message-IDs and dates, a few KB each),
/// without flags.
fn messages(folder: &str, seed: u64, n: usize) -> Vec<Upload> {
    mailgen::generate(seed, n, 1_500)
        .into_iter()
        .enumerate()
        .map(|(i, m)| upload(folder, i as u32 + 1, m.raw, m.internal_date, ""))
        .collect()
}

/// `raw` wrapped in multipart/mixed with one more attachment after it.
fn with_extra_attachment(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let (head, _) = text.split_once("\r\n\r\n").expect("a header block");
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("from:")
                || l.starts_with("to:")
                || l.starts_with("subject:")
                || l.starts_with("message-id:")
                || l.starts_with("date:")
        })
        .collect();
    format!(
        "{}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer-b\"\r\n\r\n\
--outer-b\r\nContent-Type: text/plain\r\n\r\nThe body.\r\n\
--outer-b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"more.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--outer-b--\r\n",
        kept.join("\r\n")
    )
    .into_bytes()
}

/// The same message with its Message-ID header removed.
fn without_message_id(u: &Upload) -> Upload {
    let raw = replace_message_id(&u.raw, None);
    let mut out = upload("", 0, raw, u.internal_date, &u.flags.to_wire());
    out.key = u.key.clone();
    assert_eq!(out.message_id, None);
    out
}

fn with_message_id(raw: &[u8], id: &str) -> Vec<u8> {
    replace_message_id(raw, Some(id))
}

fn replace_message_id(raw: &[u8], id: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a header section");
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("message-id:") {
            if let Some(id) = id {
                out.push_str(&format!("Message-ID: {id}\r\n"));
            }
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// By Message-ID and size, the target's own ids and the flags left out
/// (the flags case checks those): what the contract says about a listing.
fn sorted(items: Vec<Inventoried>) -> Vec<Inventoried> {
    let mut items: Vec<Inventoried> = items
        .into_iter()
        .map(|i| Inventoried {
            id: String::new(),
            flags: Flags::default(),
            ..i
        })
        .collect();
    items.sort_by(|a, b| (&a.message_id, a.size).cmp(&(&b.message_id, b.size)));
    items
}

fn count_id(stored: &[Stored], id: &str) -> usize {
    stored.iter().filter(|m| m.message_id.as_deref() == Some(id)).count()
}

/// The store holds exactly `uploads`, each once: by Message-ID (a message
/// without one is what remains), and byte-identical where the store keeps
/// the bytes.
#[track_caller]
fn assert_stored_once(stored: &[Stored], uploads: &[Upload]) {
    assert_eq!(stored.len(), uploads.len(), "messages in the folder: {stored:#?}");
    for u in uploads {
        let Some(id) = u.message_id.as_deref() else { continue };
        assert_eq!(count_id(stored, id), 1, "{id}: {stored:#?}");
    }
    let mut raws: Vec<&[u8]> = stored.iter().filter_map(|m| m.raw.as_deref()).collect();
    if raws.is_empty() {
        return;
    }
    assert_eq!(raws.len(), stored.len(), "the store keeps bytes for some messages only");
    for u in uploads {
        let at = raws
            .iter()
            .position(|r| *r == u.raw.as_ref())
            .unwrap_or_else(|| panic!("no byte-identical copy of {:?} ({} bytes)", u.message_id, u.raw.len()));
        raws.remove(at);
    }
}

// ----- fixtures and probes ---------------------------------------------------

/// A message as the store holds it, read without the target's code.
#[derive(Debug)]
struct Stored {
    /// The Message-ID the store shows (Graph makes one up for a message
    /// without).
    message_id: Option<String>,
    /// The stored bytes, where the store keeps them.
    raw: Option<Vec<u8>>,
    seen: bool,
    flagged: bool,
    /// Keywords, labels or categories; `None` where the store has no place
    /// for them.
    keywords: Option<BTreeSet<String>>,
    /// INTERNALDATE / received date, unix seconds.
    date: i64,
}

/// How the failure case makes one message of a batch fail.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// The target refuses messages over [`SIZE_LIMIT`]: an item error,
    /// the rest of the batch goes on.
    OverSize,
    /// The target refuses a zero-byte message (Dovecot: "Can't save a zero
    /// byte message"; Cyrus: "Zero-length message literal"): an item
    /// error, the rest of the batch goes on.
    ///
    /// The IMAP fixtures' servers run without a size limit; the size
    /// refusal is covered on servers with one by
    /// [`imap_size_refusal_is_that_message_alone`] and its Cyrus siblings.
    Empty,
    /// Maildir has no size limit and refuses nothing, so its only failure
    /// is a write that fails (here: something already in the way of the
    /// message's file in `tmp/`). That is fatal and ends the batch.
    Obstructed,
}

/// Inventory sizes: what the target documents for `Inventoried::size`.
#[derive(Clone, Copy, Debug)]
enum SizeRule {
    /// The stored bytes: RFC822.SIZE on IMAP, the file size on Maildir.
    Stored,
    /// The source's size, from the stamp on cutover's copies (Graph:
    /// Exchange's own sizes differ from the MIME size).
    Source,
}

enum Store {
    Maildir {
        _root: tempfile::TempDir,
        mailbox: PathBuf,
        folder_names: MaildirFolderNames,
    },
    /// Dovecot or Cyrus, read by the probe as the user itself.
    Imap {
        server: Box<dyn MailServer>,
        /// The probe's login (the password is [`USER_PASSWORD`]).
        login: &'static str,
    },
    Graph {
        emulator: Emulator,
    },
}

/// One target with its store and a user.
struct Fixture {
    target: Arc<dyn Target>,
    /// The user as the users file gives it to the target.
    user: TargetLogin,
    store: Store,
    failure: Failure,
    sizes: SizeRule,
    /// How `describe()` starts.
    describes_as: &'static str,
}

fn user_job() -> TargetLogin {
    TargetLogin {
        email: USER.into(),
        login: None,
        secret: None,
        users_file_line: 2,
    }
}

/// The user with its own target login (TargetUserName, TargetPassword).
fn user_job_with_login(login: &str) -> TargetLogin {
    TargetLogin {
        login: Some(login.into()),
        secret: Some(Secret::new(USER_PASSWORD)),
        ..user_job()
    }
}

impl Fixture {
    async fn maildir(folder_names: MaildirFolderNames) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        Fixture {
            target: maildir_target(root.path(), folder_names),
            user: user_job(),
            store: Store::Maildir {
                mailbox: root.path().join(USER),
                _root: root,
                folder_names,
            },
            failure: Failure::Obstructed,
            sizes: SizeRule::Stored,
            describes_as: "Maildir ",
        }
    }

    /// Dovecot with a master user; the target logs in as `user*admin`.
    async fn imap() -> Fixture {
        Fixture::on_dovecot(tokio::task::block_in_place(start_dovecot), Failure::Empty)
    }

    /// The IMAP fixture with Dovecot refusing messages over
    /// [`SIZE_LIMIT`] (the quota plugin's `quota_max_mail_size`, added to
    /// the generated configuration before a restart).
    async fn imap_with_size_limit() -> Fixture {
        let server = tokio::task::block_in_place(|| {
            let mut server = start_dovecot();
            let mut conf = std::fs::read_to_string(server.conf_path()).unwrap();
            conf.push_str(&format!(
                "\n# The conformance suite's size limit.\nmail_plugins = $mail_plugins quota\n\
                 plugin {{\n  quota = maildir:User quota\n  quota_max_mail_size = {SIZE_LIMIT}\n}}\n"
            ));
            std::fs::write(server.conf_path(), conf).unwrap();
            server.restart();
            server
        });
        Fixture::on_dovecot(server, Failure::OverSize)
    }

    fn on_dovecot(server: Dovecot, failure: Failure) -> Fixture {
        Fixture {
            target: imap_target(server.port(), ImapLogin::Master),
            user: user_job(),
            store: Store::Imap {
                server: Box::new(server),
                login: USER,
            },
            failure,
            sizes: SizeRule::Stored,
            describes_as: "IMAP 127.0.0.1:",
        }
    }

    /// Cyrus IMAP 3.6 in either configuration. Cyrus's admin logs in as
    /// itself (LOGIN has no `user*admin`), so the target logs in as the
    /// user, with the login and password the users file gives it.
    async fn cyrus(config: CyrusConfig) -> Fixture {
        Fixture::on_cyrus(tokio::task::block_in_place(|| start_cyrus(config)), Failure::Empty)
    }

    /// The Cyrus fixture refusing messages over [`SIZE_LIMIT`]:
    /// `maxmessagesize` (which imapd announces as `APPENDLIMIT` and
    /// enforces on APPEND) added to the instance's `imapd.conf` before a
    /// restart.
    async fn cyrus_with_size_limit(config: CyrusConfig) -> Fixture {
        let server = tokio::task::block_in_place(|| {
            let mut server = start_cyrus(config);
            let mut conf = std::fs::read_to_string(server.conf_path()).unwrap();
            assert!(
                !conf.lines().any(|l| l.starts_with("maxmessagesize:")),
                "Cyrus refuses a key given twice"
            );
            conf.push_str(&format!(
                "# The conformance suite's size limit.\nmaxmessagesize: {SIZE_LIMIT}\n"
            ));
            std::fs::write(server.conf_path(), conf).unwrap();
            server.restart();
            server
        });
        Fixture::on_cyrus(server, Failure::OverSize)
    }

    fn on_cyrus(server: Cyrus, failure: Failure) -> Fixture {
        Fixture {
            target: imap_target(server.port(), ImapLogin::PerUser),
            user: user_job_with_login(CYRUS_LOGIN),
            store: Store::Imap {
                server: Box::new(server),
                login: CYRUS_LOGIN,
            },
            failure,
            sizes: SizeRule::Stored,
            describes_as: "IMAP 127.0.0.1:",
        }
    }

    /// The emulator with every mailbox's MaxReceiveSize at [`SIZE_LIMIT`].
    async fn graph(write_mode: GraphWriteMode) -> Fixture {
        let emulator = tokio::task::block_in_place(|| Emulator::start(SIZE_LIMIT));
        Fixture {
            target: graph_target(&emulator.base, write_mode),
            user: user_job(),
            store: Store::Graph { emulator },
            failure: Failure::OverSize,
            sizes: SizeRule::Source,
            describes_as: "Microsoft Graph ",
        }
    }

    /// Stops servers and removes directories off the async threads.
    fn finish(self) {
        tokio::task::block_in_place(move || drop(self));
    }

    fn expected_inventory(&self, uploads: &[Upload]) -> Vec<Inventoried> {
        sorted(
            uploads
                .iter()
                .map(|u| Inventoried {
                    id: String::new(),
                    flags: Flags::default(),
                    message_id: u.message_id.clone(),
                    size: match self.sizes {
                        SizeRule::Stored => u.raw.len() as u64,
                        SizeRule::Source => u.source_size,
                    },
                })
                .collect(),
        )
    }

    /// Whether the id `find` returned names what `upload` returned: the
    /// same id, on every target.
    fn same_id(&self, uploaded: &str, found: &str) -> bool {
        uploaded == found
    }

    /// Every folder of the mailbox, as the store names it (IMAP: relative
    /// to the personal namespace, see [`imap_relative`]).
    async fn folders(&self) -> BTreeSet<String> {
        match &self.store {
            Store::Maildir { mailbox, .. } => tokio::task::block_in_place(|| maildir_folders(mailbox)),
            Store::Imap { server, login } => tokio::task::block_in_place(|| {
                imap_list(server.as_ref(), login)
                    .into_iter()
                    .map(|e| {
                        imap_relative(server.as_ref(), &e.name)
                            .unwrap_or_else(|| format!("{} (outside the personal namespace)", e.name))
                    })
                    .collect()
            }),
            Store::Graph { emulator } => {
                let dump = emulator.dump(USER).await;
                dump["folders"]
                    .as_array()
                    .map(|all| all.iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default()
            }
        }
    }

    /// Whether the store has the folder a target reference names.
    async fn has_folder(&self, reference: &str) -> bool {
        match &self.store {
            Store::Maildir { mailbox, .. } => mailbox.join(reference).join("cur").is_dir(),
            // A reference is a wire name; the probe compares names
            // relative to the personal namespace.
            Store::Imap { server, .. } => match imap_relative(server.as_ref(), &mutf7_decode(reference)) {
                Some(name) => self.folders().await.contains(&name),
                None => false,
            },
            Store::Graph { emulator } => graph_folder(&emulator.dump(USER).await, reference).is_some(),
        }
    }

    /// Whether a folder's reference spells its name as the store should:
    /// a Maildir folder outside the roles is `.` and its path joined by `.`,
    /// in UTF-8 as it is, in modified UTF-7 all ASCII; an IMAP folder is
    /// where a mail client looks for it, relative to the personal namespace
    /// (see [`imap_expected_folder`]). Graph names folders its own way
    /// (checked by `has_folder`).
    async fn check_folder_name(&self, f: &TargetFolder, reference: &str) {
        if let Store::Imap { server, login } = &self.store {
            let server = server.as_ref();
            let name = imap_relative(server, &mutf7_decode(reference)).unwrap_or_else(|| {
                panic!(
                    "{f:?} -> {reference:?}: outside the personal namespace ({:?})",
                    server.prefix()
                )
            });
            let listed = tokio::task::block_in_place(|| imap_list(server, login));
            assert_eq!(name, imap_expected_folder(server, &listed, f), "{f:?} -> {reference:?}");
            return;
        }
        let Store::Maildir { folder_names, .. } = &self.store else {
            return;
        };
        if !matches!(f.anchor, None | Some(FolderRole::Inbox)) || f.path.is_empty() {
            return;
        }
        match folder_names {
            MaildirFolderNames::Utf8 => assert_eq!(reference, format!(".{}", f.path.join(".")), "{f:?}"),
            MaildirFolderNames::Utf7 => {
                assert!(
                    reference.is_ascii() && reference.starts_with('.'),
                    "{f:?} -> {reference:?}"
                );
                assert_eq!(reference.matches('.').count(), f.path.len(), "{f:?} -> {reference:?}");
            }
        }
    }

    /// Every message of the folder a target reference names.
    async fn stored(&self, reference: &str) -> Vec<Stored> {
        match &self.store {
            Store::Maildir { mailbox, .. } => tokio::task::block_in_place(|| maildir_stored(&mailbox.join(reference))),
            Store::Imap { server, login } => {
                tokio::task::block_in_place(|| imap_stored(server.as_ref(), login, reference))
            }
            Store::Graph { emulator } => graph_stored(&emulator.dump(USER).await, reference),
        }
    }

    /// The message to put into a batch in place of `like`, such that the
    /// target fails it (see [`Failure`]).
    async fn failing_message(&self, reference: &str, like: &Upload) -> Upload {
        let mut failing = match self.failure {
            Failure::Obstructed => {
                let Store::Maildir { mailbox, .. } = &self.store else {
                    unreachable!("only the Maildir fixture is obstructed")
                };
                // Maildir names a message's file after its key (stable:
                // `find` depends on it); a directory of that name in tmp/
                // makes writing the file fail.
                let digest = Sha256::digest(like.key.to_string().as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                let name = format!("{}.{hex}.cutover", like.internal_date.max(0));
                let in_the_way = mailbox.join(reference).join("tmp").join(name);
                tokio::task::block_in_place(|| std::fs::create_dir_all(in_the_way)).unwrap();
                return like.clone();
            }
            Failure::Empty => upload("batch", 0, Vec::new(), like.internal_date, ""),
            Failure::OverSize => {
                // Twice the limit: Graph's json mode counts the decoded
                // attachment, not the MIME.
                let big = mailgen::big_message(2 * SIZE_LIMIT, 7);
                upload("batch", 0, big.raw, big.internal_date, "")
            }
        };
        failing.key = like.key.clone();
        failing
    }
}

// Maildir: the files themselves.

fn maildir_folders(mailbox: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if mailbox.join("cur").is_dir() {
        out.insert(String::new());
    }
    if let Ok(entries) = std::fs::read_dir(mailbox) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && e.path().join("cur").is_dir() {
                out.insert(name);
            }
        }
    }
    out
}

fn maildir_stored(dir: &Path) -> Vec<Stored> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let info = name.split_once(":2,").map_or("", |(_, i)| i).to_owned();
            let raw = std::fs::read(e.path()).unwrap();
            let mtime = e.metadata().unwrap().modified().unwrap();
            out.push(Stored {
                message_id: mailgen::message_id(&raw),
                raw: Some(raw),
                seen: info.contains('S'),
                flagged: info.contains('F'),
                keywords: None,
                date: mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
            });
        }
    }
    out
}

// IMAP: the tiny test client, logged in as the user (not the master), on
// any fixture server. Folder names are compared relative to the personal
// namespace, the fixtures' way: UTF-8, `/` between levels, `INBOX` for the
// inbox (`INBOX.Archive.2024` on Cyrus with Debian's config is
// `Archive/2024`).

fn start_dovecot() -> Dovecot {
    Dovecot::start(DovecotOptions {
        users: vec![(USER.into(), USER_PASSWORD.into())],
        master: Some((ADMIN.into(), ADMIN_PASSWORD.into())),
        ..Default::default()
    })
}

fn start_cyrus(config: CyrusConfig) -> Cyrus {
    Cyrus::start(CyrusOptions {
        config,
        users: vec![(CYRUS_LOGIN.into(), USER_PASSWORD.into())],
    })
}

fn imap_login(server: &dyn MailServer, login: &str) -> ImapConn {
    let mut c = ImapConn::connect(server.port());
    c.login(login, USER_PASSWORD).expect_ok("probe login");
    c
}

/// `LIST "" "*"`, names decoded from modified UTF-7.
fn imap_list(server: &dyn MailServer, login: &str) -> Vec<ListEntry> {
    let mut c = imap_login(server, login);
    let list = c.list("", "*");
    c.logout();
    list
}

/// A server's folder name (decoded) relative to its personal namespace, as
/// the fixtures name folders; `None` outside it.
fn imap_relative(server: &dyn MailServer, name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some("INBOX".into());
    }
    let prefix = server.prefix();
    // INBOX is case-insensitive, so is a prefix that starts with it.
    let rest = match prefix.get(..5) {
        Some(inbox) if inbox.eq_ignore_ascii_case("INBOX") => name
            .get(..5)
            .filter(|n| n.eq_ignore_ascii_case("INBOX"))
            .and_then(|_| name[5..].strip_prefix(&prefix[5..]))?,
        _ => name.strip_prefix(prefix)?,
    };
    if rest.is_empty() {
        return None;
    }
    Some(rest.split(server.separator()).collect::<Vec<_>>().join("/"))
}

/// Where a target folder belongs, relative to the personal namespace: a
/// folder by path at the top of the namespace; one below the inbox below
/// INBOX (which, where the namespace is `INBOX` and its separator, is the
/// top of the namespace); one below a role below the server's folder for
/// that role, which is the folder LIST marks with its SPECIAL-USE
/// attribute, or else the role's usual name at the top.
fn imap_expected_folder(server: &dyn MailServer, listed: &[ListEntry], f: &TargetFolder) -> String {
    let mut parts: Vec<String> = Vec::new();
    match f.anchor {
        None => {}
        Some(FolderRole::Inbox) => {
            let prefix = server.prefix();
            let inbox_is_the_namespace =
                prefix.len() == 6 && prefix[..5].eq_ignore_ascii_case("INBOX") && prefix.ends_with(server.separator());
            if !inbox_is_the_namespace || f.path.is_empty() {
                parts.push("INBOX".into());
            }
        }
        Some(role) => {
            let (attribute, usual) = match role {
                FolderRole::Sent => ("\\Sent", "Sent"),
                FolderRole::Drafts => ("\\Drafts", "Drafts"),
                FolderRole::Trash => ("\\Trash", "Trash"),
                FolderRole::Junk => ("\\Junk", "Junk"),
                FolderRole::Archive => ("\\Archive", "Archive"),
                other => panic!("no IMAP folder expected for {other:?}"),
            };
            let marked = listed
                .iter()
                .find(|e| e.attributes.iter().any(|a| a.eq_ignore_ascii_case(attribute)))
                .and_then(|e| imap_relative(server, &e.name));
            parts.push(marked.unwrap_or_else(|| usual.into()));
        }
    }
    parts.extend(f.path.iter().cloned());
    parts.join("/")
}

/// Every message of the folder a reference (a wire name) names, opened by
/// the fixture's name for it (relative to the personal namespace).
fn imap_stored(server: &dyn MailServer, login: &str, reference: &str) -> Vec<Stored> {
    let relative = imap_relative(server, &mutf7_decode(reference)).unwrap_or_else(|| {
        panic!(
            "{reference:?} is outside the personal namespace ({:?})",
            server.prefix()
        )
    });
    let mut c = imap_login(server, login);
    let fetched = c.fetch_all(&server.mailbox_name(&relative));
    c.logout();
    fetched
        .into_iter()
        .map(|m| {
            let flags: Vec<&String> = m.flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).collect();
            Stored {
                message_id: mailgen::message_id(&m.raw),
                seen: flags.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")),
                flagged: flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged")),
                keywords: Some(
                    flags
                        .iter()
                        .filter(|f| !f.starts_with('\\'))
                        .map(|f| f.to_string())
                        .collect(),
                ),
                date: m.internal_date,
                raw: Some(m.raw),
            }
        })
        .collect()
}

// Graph: the emulator's admin API (`/_emulator/mailboxes/{user}`).

/// A Graph emulator on a free loopback port, stopped when dropped.
struct Emulator {
    /// Keeps the process alive; it is killed when this is dropped.
    _running: support::emulator::RunningEmulator,
    base: String,
    http: reqwest::Client,
}

impl Emulator {
    fn start(max_receive_size: usize) -> Emulator {
        let running = support::emulator::Emulator::new()
            .seed(7)
            .client_secret(GRAPH_SECRET)
            .args(["--max-receive-size-bytes", &max_receive_size.to_string()])
            .start();
        Emulator {
            base: running.base_url.clone(),
            _running: running,
            http: reqwest::Client::new(),
        }
    }

    /// The whole mailbox; `Null` when it was never used.
    async fn dump(&self, user: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/_emulator/mailboxes/{user}", self.base))
            .send()
            .await
            .unwrap();
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Value::Null;
        }
        assert!(resp.status().is_success(), "dump: {}", resp.status());
        resp.json().await.unwrap()
    }
}

/// The folder a reference names: its id, or a well-known name.
fn graph_folder<'a>(dump: &'a Value, reference: &str) -> Option<&'a Value> {
    dump["folders"].as_array()?.iter().find(|f| {
        f["id"] == reference
            || f["wellKnownName"]
                .as_str()
                .is_some_and(|w| w.eq_ignore_ascii_case(reference))
    })
}

fn graph_stored(dump: &Value, reference: &str) -> Vec<Stored> {
    let Some(folder) = graph_folder(dump, reference) else {
        return Vec::new();
    };
    let date = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    dump["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["folderId"] == folder["id"])
        .map(|m| Stored {
            message_id: m["internetMessageId"].as_str().map(str::to_owned),
            // json mode re-creates the message: only an import keeps bytes.
            raw: (m["createdVia"] == "import-mime")
                .then(|| STANDARD.decode(m["mimeBase64"].as_str().unwrap()).unwrap()),
            seen: m["isRead"] == true,
            flagged: m["flag"]["flagStatus"] == "flagged",
            keywords: Some(
                m["categories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_owned())
                    .collect(),
            ),
            date: date(&m["receivedDateTime"]),
        })
        .collect()
}
