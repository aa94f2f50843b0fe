//! Planning a 500,000-message mailbox: the newest-first merge, the caps and
//! the batching that every run does before fetching anything; and the pure
//! parts of a resync after mail was filed elsewhere: matching the copies
//! kept for vanished messages to new messages (`plan::match_moves`), and
//! checking a folder's UID SEARCH answer against the UIDs known
//! (`source::imap::only_asked`).

use criterion::{Criterion, criterion_group, criterion_main};
use cutover::plan::{self, Candidate, Limits, State};
use cutover::source::imap::only_asked;

fn mailbox(n: usize) -> Vec<Candidate> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..n)
        .map(|i| Candidate {
            folder: rng.usize(0..20),
            uid: i as u32 + 1,
            internal_date: 1_300_000_000 + rng.i64(0..400_000_000),
            size: rng.u64(500..200_000),
            state: if rng.u8(0..10) < 7 {
                State::Copied
            } else {
                State::Pending
            },
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let candidates = mailbox(500_000);
    let limits = Limits {
        max_items: 500_000,
        max_message_bytes: 36_700_160,
    };
    c.bench_function("plan 500k messages", |b| {
        b.iter(|| plan::plan(std::hint::black_box(&candidates), limits))
    });
    let p = plan::plan(&candidates, limits);
    c.bench_function("batch 150k messages", |b| {
        b.iter(|| plan::batches(&candidates, std::hint::black_box(&p.copy), 100, 8 << 20))
    });

    // 1,000 messages filed elsewhere, among 500,000: the kept copies of the
    // vanished ones against the new ones (plus new mail that matches
    // nothing); and the worst case, every message of the mailbox both.
    let ids: Vec<String> = (0..500_000).map(|i| format!("<{i}.bench@example.test>")).collect();
    let key = |i: usize| Some((ids[i].as_str(), 1_000 + (i as u64 % 5_000)));
    let kept: Vec<_> = (0..1_000).map(|i| key(i * 500)).collect();
    let new: Vec<_> = (0..1_000)
        .map(|i| key(i * 500 + 1))
        .chain(kept.iter().copied())
        .collect();
    c.bench_function("match 1k moved among 2k new messages", |b| {
        b.iter(|| plan::match_moves(std::hint::black_box(&kept), &new))
    });
    let all: Vec<_> = (0..500_000).map(key).collect();
    let mut reversed = all.clone();
    reversed.reverse();
    c.bench_function("match 500k kept copies to 500k new messages", |b| {
        b.iter(|| plan::match_moves(std::hint::black_box(&all), &reversed))
    });

    // A 200,000-message folder (a 500,000-message mailbox's INBOX) from
    // which 100 vanished: the UID SEARCH answer against the known UIDs.
    let known: Vec<u32> = (1..=200_000).collect();
    let answer: Vec<u32> = known.iter().copied().filter(|u| u % 2_000 != 0).collect();
    c.bench_function("check a 200k-UID SEARCH answer", |b| {
        b.iter(|| only_asked(std::hint::black_box(answer.clone()), &known))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
