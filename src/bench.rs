//! `cutover bench`: how fast the source can be read, at several connection
//! counts, before anything is migrated. Admins use it to size a migration
//! and to find the knee: the connection count past which throughput stops
//! growing or the server starts pushing back. Reads only (EXAMINE,
//! BODY.PEEK[]); writes nothing anywhere.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::roster::UserJob;
use crate::source::Source;

#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub connections: usize,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    pub megabytes_per_second: f64,
    pub p50_fetch_ms: f64,
    pub p99_fetch_ms: f64,
    pub errors: u64,
    pub throttled: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub users: Vec<String>,
    pub rows: Vec<BenchRow>,
    /// COMPRESS=DEFLATE was negotiated with the source (offered by the
    /// server and allowed by `[source] compress`): the MB/s are mail
    /// bytes, the wire carried fewer.
    pub compressed: bool,
    /// The connection count past which throughput stops growing (by 10% or
    /// more) or the server starts throttling.
    pub knee: Option<usize>,
}

/// One UID batch to fetch: (user index, folder wire name, UIDs).
type Job = (usize, String, Vec<u32>);

pub async fn bench(
    source: &Source,
    users: &[UserJob],
    connection_counts: &[usize],
    seconds: u64,
) -> Result<BenchReport, Error> {
    // The work list: every message of every user, in fetch batches.
    let mut jobs: Vec<Job> = Vec::new();
    let mut compressed = false;
    for (ui, user) in users.iter().enumerate() {
        let mut session = source.open(&user.source_login()).await?;
        compressed |= session.is_compressed();
        for folder in session.folders().await? {
            let state = session.examine(&folder.wire_name).await?;
            if state.exists == 0 {
                continue;
            }
            let metas = session.scan(1, crate::model::ScanDepth::Index).await?;
            for chunk in metas.chunks(50) {
                jobs.push((ui, folder.wire_name.clone(), chunk.iter().map(|m| m.uid).collect()));
            }
        }
        session.logout().await;
    }
    if jobs.is_empty() {
        return Err(Error::fatal(
            "the benchmark users' mailboxes are empty: nothing to read",
        ));
    }
    let mut rows = Vec::new();
    for &connections in connection_counts {
        rows.push(measure(source, users, &jobs, connections, Duration::from_secs(seconds)).await?);
    }
    let knee = find_knee(&rows);
    Ok(BenchReport {
        users: users.iter().map(|u| u.email.clone()).collect(),
        rows,
        compressed,
        knee,
    })
}

/// The last count that still paid off: the next one either grew throughput
/// by less than 10% or was throttled.
pub fn find_knee(rows: &[BenchRow]) -> Option<usize> {
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.throttled > a.throttled || b.messages_per_second < a.messages_per_second * 1.10 {
            return Some(a.connections);
        }
    }
    rows.last().map(|r| r.connections)
}

#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
    latencies_ms: Vec<f64>,
    errors: u64,
    throttled: u64,
}

async fn measure(
    source: &Source,
    users: &[UserJob],
    jobs: &[Job],
    connections: usize,
    budget: Duration,
) -> Result<BenchRow, Error> {
    let queue: Arc<Mutex<VecDeque<Job>>> = Arc::new(Mutex::new(jobs.iter().cloned().collect()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + budget;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (queue, tally, source) = (queue.clone(), tally.clone(), source.clone());
        let users = users.to_vec();
        tasks.push(tokio::spawn(async move {
            let user = &users[c % users.len()];
            let mut session = match source.open(&user.source_login()).await {
                Ok(s) => s,
                Err(e) => {
                    record_error(&tally, &e);
                    return;
                }
            };
            while Instant::now() < deadline {
                let Some((ui, folder, uids)) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    break;
                };
                if users[ui].email != user.email {
                    // Another connection's user: hand it back for them.
                    if let Ok(mut q) = queue.lock() {
                        q.push_back((ui, folder, uids));
                    }
                    if users.len() > 1 {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    break;
                }
                if session.examined() != Some(folder.as_str())
                    && let Err(e) = session.examine(&folder).await
                {
                    record_error(&tally, &e);
                    break;
                }
                let t = Instant::now();
                let mut messages = 0u64;
                let mut bytes = 0u64;
                let result = session
                    .fetch_bodies(&uids, u64::MAX, |_, body| {
                        messages += 1;
                        bytes += body.len() as u64;
                    })
                    .await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let Ok(mut tl) = tally.lock() else { break };
                tl.messages += messages;
                tl.bytes += bytes;
                tl.latencies_ms.push(ms);
                if let Err(e) = result {
                    drop(tl);
                    record_error(&tally, &e);
                    break;
                }
            }
            session.logout().await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64().max(0.001);
    let mut tally = std::mem::take(&mut *tally.lock().map_err(|_| Error::fatal("benchmark worker panicked"))?);
    tally.latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if tally.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((tally.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        tally.latencies_ms[i]
    };
    Ok(BenchRow {
        connections,
        messages: tally.messages,
        bytes: tally.bytes,
        seconds: elapsed,
        messages_per_second: tally.messages as f64 / elapsed,
        megabytes_per_second: tally.bytes as f64 / elapsed / 1e6,
        p50_fetch_ms: pct(0.50),
        p99_fetch_ms: pct(0.99),
        errors: tally.errors,
        throttled: tally.throttled,
    })
}

fn record_error(tally: &Mutex<Tally>, e: &Error) {
    tracing::warn!("benchmark connection: {e}");
    if let Ok(mut t) = tally.lock() {
        if matches!(e.kind, ErrorKind::Throttled(_)) {
            t.throttled += 1;
        } else {
            t.errors += 1;
        }
    }
}

pub fn render_table(report: &BenchReport) -> String {
    let mut out = format!(
        "source read throughput for {}{}\n",
        report.users.join(", "),
        if report.compressed { " (COMPRESS=DEFLATE)" } else { "" }
    );
    out.push_str("CONNECTIONS  MESSAGES    MSG/S     MB/S  P50 FETCH  P99 FETCH  ERRORS  THROTTLED\n");
    for r in &report.rows {
        out.push_str(&format!(
            "{:>11}  {:>8}  {:>7.0}  {:>7.1}  {:>7.1}ms  {:>7.1}ms  {:>6}  {:>9}\n",
            r.connections,
            r.messages,
            r.messages_per_second,
            r.megabytes_per_second,
            r.p50_fetch_ms,
            r.p99_fetch_ms,
            r.errors,
            r.throttled
        ));
    }
    if let Some(k) = report.knee {
        out.push_str(&format!(
            "knee: {k} connections (more connections do not read faster, or the server pushes back)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(c: usize, mps: f64, throttled: u64) -> BenchRow {
        BenchRow {
            connections: c,
            messages: 0,
            bytes: 0,
            seconds: 1.0,
            messages_per_second: mps,
            megabytes_per_second: 0.0,
            p50_fetch_ms: 0.0,
            p99_fetch_ms: 0.0,
            errors: 0,
            throttled,
        }
    }

    #[test]
    fn knee_is_where_growth_stops_or_throttling_starts() {
        assert_eq!(
            find_knee(&[row(1, 100.0, 0), row(2, 190.0, 0), row(4, 200.0, 0), row(8, 205.0, 0)]),
            Some(2)
        );
        assert_eq!(
            find_knee(&[row(1, 100.0, 0), row(2, 190.0, 0), row(4, 380.0, 3)]),
            Some(2)
        );
        assert_eq!(find_knee(&[row(1, 100.0, 0), row(2, 190.0, 0)]), Some(2));
    }
}
