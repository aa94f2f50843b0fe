//! Planning a 500,000-message mailbox: the newest-first merge, the caps and
//! the batching that every run does before fetching anything.

use criterion::{Criterion, criterion_group, criterion_main};
use cutover::plan::{self, Candidate, Limits, State};

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
