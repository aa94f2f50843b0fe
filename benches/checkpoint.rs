//! The checkpoint's hot writes and reads: storing a scan, recording copies
//! in the batched transactions the run's writer thread makes (up to 4,096
//! records per commit), and reading a 100,000-message mailbox back for
//! planning. A no-op resync of a large mailbox is mostly the last one;
//! every resync also looks for copies kept for vanished messages and for
//! copies whose flags changed on the source, among all of them.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use cutover::checkpoint::{Checkpoint, Record};
use cutover::model::{Flags, FolderRole, MessageMeta};

fn metas(from: u32, n: u32) -> Vec<MessageMeta> {
    (from..from + n)
        .map(|uid| MessageMeta {
            uid,
            flags: Flags::from_wire("\\Seen"),
            internal_date: 1_600_000_000 + i64::from(uid),
            size: 20_000 + u64::from(uid % 5000),
            message_id: Some(format!("<{uid}.bench@example.test>")),
            subject: Some(format!("Quarterly report {uid}")),
            gm_msgid: None,
        })
        .collect()
}

/// A fresh DB with one user, one folder and `n` scanned messages.
fn scanned(n: u32) -> (tempfile::TempDir, Checkpoint, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = Checkpoint::open(&dir.path().join("state.db")).unwrap();
    cp.ensure_user("bench@example.test").unwrap();
    let folders = cp
        .sync_folder_list(
            "bench@example.test",
            &[("INBOX".into(), "INBOX".into(), Some(FolderRole::Inbox))],
        )
        .unwrap();
    let id = folders[0].id;
    if n > 0 {
        cp.store_scan(id, 1, n + 1, n, &metas(1, n), false).unwrap();
    }
    (dir, cp, id)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(10);

    g.bench_function("store a scan of 10k messages", |b| {
        b.iter_batched(
            || scanned(0),
            |(_d, mut cp, id)| cp.store_scan(id, 1, 10_001, 10_000, &metas(1, 10_000), false).unwrap(),
            BatchSize::PerIteration,
        )
    });

    g.bench_function("record 4096 copies in one transaction", |b| {
        b.iter_batched(
            || {
                let (d, cp, id) = scanned(10_000);
                let records: Vec<Record> = (1..=4096)
                    .map(|uid| Record::Copied {
                        folder_id: id,
                        uid,
                        target_id: format!("target-{uid}"),
                        message_id: Some(format!("<{uid}@bench.example>")),
                        converted: None,
                    })
                    .collect();
                (d, cp, records)
            },
            |(_d, mut cp, records)| cp.apply(&records).unwrap(),
            BatchSize::PerIteration,
        )
    });

    let (_d, mut cp, id) = scanned(100_000);
    g.bench_function("read 100k messages for planning", |b| {
        b.iter(|| cp.messages("bench@example.test", false).unwrap().len())
    });

    // A resync without CONDSTORE reads every message's flags: all 100,000
    // of a folder compared with the checkpoint, none changed.
    let unchanged: Vec<(u32, Flags)> = (1..=100_000).map(|uid| (uid, Flags::from_wire("\\Seen"))).collect();
    g.bench_function("refresh 100k flags read without CONDSTORE", |b| {
        b.iter(|| cp.refresh_flags(id, std::hint::black_box(&unchanged)).unwrap())
    });

    // 100,000 copies, of which 1% had their flags changed on the source and
    // 100 vanished from their folder: what a resync lists to write and to
    // move (a no-op resync lists nothing, at the same cost of finding it).
    let (_d2, mut cp, id) = scanned(100_000);
    let copies: Vec<Record> = (1..=100_000)
        .map(|uid| Record::Copied {
            folder_id: id,
            uid,
            target_id: format!("target-{uid}"),
            message_id: None,
            converted: None,
        })
        .collect();
    for chunk in copies.chunks(4096) {
        cp.apply(chunk).unwrap();
    }
    let flagged: Vec<(u32, Flags)> = (1..=100_000)
        .step_by(100)
        .map(|uid| (uid, Flags::from_wire("\\Seen \\Flagged")))
        .collect();
    cp.refresh_flags(id, &flagged).unwrap();
    let gone: Vec<Record> = (50..=100_000)
        .step_by(1_000)
        .map(|uid| Record::Gone { folder_id: id, uid })
        .collect();
    cp.apply(&gone).unwrap();
    g.bench_function("list 1k flag changes among 100k copies", |b| {
        b.iter(|| cp.flag_changes("bench@example.test").unwrap().len())
    });
    g.bench_function("list 100 kept copies among 100k", |b| {
        b.iter(|| cp.kept_copies("bench@example.test").unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
