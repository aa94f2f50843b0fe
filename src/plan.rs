//! Decides what a run copies, from what the scan saw and what earlier runs
//! did. A pure function of its inputs (no I/O, no async), so it is tested and
//! benchmarked on its own: all folders of a mailbox merged newest-first by
//! INTERNALDATE, the newest `max_items` in scope, messages over
//! `max_message_bytes` skipped without ever being fetched, messages already
//! copied left out, and the rest grouped into fetch batches.

use std::cmp::Reverse;

use crate::model::SkipReason;

/// Where a message stands in the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Seen by a scan, not copied yet.
    Pending,
    /// The target confirmed it.
    Copied,
    Skipped(SkipReason),
    /// The last attempt failed; a rerun tries again.
    Failed,
    /// An upload was under way when a run stopped: the target may or may
    /// not have it, so it must be looked up before it is sent again.
    InFlight,
    /// No longer in the source (deleted there before it was copied).
    Gone,
}

/// One message as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the folder in the caller's folder list.
    pub folder: usize,
    pub uid: u32,
    pub internal_date: i64,
    pub size: u64,
    pub state: State,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_items: u64,
    pub max_message_bytes: u64,
}

/// The outcome: indexes into the candidate slice.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// To copy, newest first.
    pub copy: Vec<usize>,
    /// Newly decided skips (including ones already recorded, so the caller
    /// can write them idempotently).
    pub skip: Vec<(usize, SkipReason)>,
    /// Messages within the item cap.
    pub in_scope: u64,
    /// Of those, already in the target.
    pub already_copied: u64,
}

pub fn plan(candidates: &[Candidate], limits: Limits) -> Plan {
    let mut order: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].state != State::Gone)
        .collect();
    order.sort_unstable_by_key(|&i| {
        let c = &candidates[i];
        (Reverse(c.internal_date), c.folder, Reverse(c.uid))
    });
    let mut out = Plan::default();
    for (rank, &i) in order.iter().enumerate() {
        let c = &candidates[i];
        if rank as u64 >= limits.max_items {
            if c.state != State::Copied {
                out.skip.push((i, SkipReason::OverItemCap));
            }
            continue;
        }
        out.in_scope += 1;
        match c.state {
            State::Copied => out.already_copied += 1,
            _ if c.size > limits.max_message_bytes => out.skip.push((i, SkipReason::TooLarge)),
            _ => out.copy.push(i),
        }
    }
    out
}

/// A group of messages of one folder fetched with one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub folder: usize,
    /// Indexes into the candidate slice, newest first.
    pub items: Vec<usize>,
    pub bytes: u64,
}

/// Smallest batch size [`batch_bytes_within_budget`] picks (unless the
/// configured size is smaller): below it round trips cost more than the
/// memory saved.
pub const MIN_SHARED_BATCH_BYTES: u64 = 256 * 1024;

/// The batch size to fetch with: the configured `batch_bytes`, or less when
/// the in-flight budget could not otherwise hold one batch for every
/// connection of every mailbox running at once. A worker holds its batch's
/// bytes until the target stored them, and a paced target (Graph's 150 MB
/// per 5 minutes) drains them slowly: with batches too large for the
/// budget, the first workers to fetch hold all of it and the other
/// mailboxes wait, idle, for their turn.
pub fn batch_bytes_within_budget(
    configured: u64,
    max_in_flight_bytes: u64,
    mailboxes_at_once: usize,
    connections_per_mailbox: usize,
) -> u64 {
    let connections = (mailboxes_at_once.max(1) as u64).saturating_mul(connections_per_mailbox.max(1) as u64);
    (max_in_flight_bytes / connections)
        .max(MIN_SHARED_BATCH_BYTES)
        .min(configured)
}

/// How many source connections (and workers) each mailbox copies with:
/// `configured` (`connections_per_user`), or fewer, so that the mailboxes
/// running at once fit within the source host's connection cap (`None`: a
/// source without one, such as a Takeout file) and the per-user cap, one
/// connection each at least. Without this, the first mailboxes to start
/// take every slot of the host, several each, and the others wait idle
/// for them; with it, every mailbox gets its first connection before any
/// gets a second. (A mailbox keeps its target busy with one connection:
/// targets that can write several messages at once do so.)
pub fn connections_per_mailbox(
    configured: usize,
    per_user_cap: usize,
    host_cap: Option<usize>,
    mailboxes_at_once: usize,
) -> usize {
    let fair_share = host_cap.map_or(usize::MAX, |cap| cap / mailboxes_at_once.max(1));
    configured.min(per_user_cap).min(fair_share).max(1)
}

/// Groups the copy list into per-folder batches of at most `max_messages`
/// messages and about `max_bytes` bytes (a single larger message gets a
/// batch of its own), keeping the newest-first order of first appearance.
pub fn batches(candidates: &[Candidate], copy: &[usize], max_messages: usize, max_bytes: u64) -> Vec<Batch> {
    let mut open: Vec<Option<Batch>> = Vec::new();
    let mut done = Vec::new();
    for &i in copy {
        let c = &candidates[i];
        if open.len() <= c.folder {
            open.resize(c.folder + 1, None);
        }
        let slot = &mut open[c.folder];
        if let Some(b) = slot
            && (b.items.len() >= max_messages || b.bytes + c.size > max_bytes)
        {
            done.push(slot.take().expect("checked above"));
        }
        let b = slot.get_or_insert_with(|| Batch {
            folder: c.folder,
            items: Vec::new(),
            bytes: 0,
        });
        b.items.push(i);
        b.bytes += c.size;
    }
    let mut rest: Vec<Batch> = open.into_iter().flatten().collect();
    // Partly filled batches go last, ordered by their newest message.
    rest.sort_by_key(|b| b.items[0]);
    rest.sort_by_key(|b| Reverse(candidates[b.items[0]].internal_date));
    done.extend(rest);
    done
}

/// Which new messages are kept copies filed elsewhere on the source: pairs
/// (index in `kept`, index in `new`) of the same key (Message-ID and size;
/// for a message without one, its content key and size), one to one, in
/// `new`'s order. A message with no key (`None`) is never paired: it cannot
/// be told from another of the same size.
pub fn match_moves(kept: &[Option<(&str, u64)>], new: &[Option<(&str, u64)>]) -> Vec<(usize, usize)> {
    let mut by_key: std::collections::HashMap<(&str, u64), Vec<usize>> = std::collections::HashMap::new();
    for (i, k) in kept.iter().enumerate().rev() {
        if let Some(key) = k {
            by_key.entry(*key).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (j, n) in new.iter().enumerate() {
        if let Some(key) = n
            && let Some(i) = by_key.get_mut(key).and_then(Vec::pop)
        {
            out.push((i, j));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn moves_pair_one_kept_copy_with_one_new_message_of_the_same_key() {
        use super::match_moves;
        let kept = [Some(("<a>", 10)), Some(("<b>", 20)), Some(("<a>", 10)), None];
        let new = [
            Some(("<a>", 10)),
            Some(("<a>", 11)),
            Some(("<a>", 10)),
            Some(("<a>", 10)),
            None,
        ];
        // The two kept <a> copies go to the first two new <a>; the third
        // new <a>, a different size and the unkeyed ones stay new.
        assert_eq!(match_moves(&kept, &new), vec![(0, 0), (2, 2)]);
        assert!(match_moves(&[], &new).is_empty());
    }

    #[test]
    fn batches_shrink_so_every_connection_of_every_mailbox_holds_one() {
        const MIB: u64 = 1024 * 1024;
        // One mailbox, 8 connections: 96 MiB holds 8 batches of 8 MiB.
        assert_eq!(batch_bytes_within_budget(8 * MIB, 96 * MIB, 1, 8), 8 * MIB);
        // 20 mailboxes with 4 connections each share 96 MiB.
        let shared = batch_bytes_within_budget(8 * MIB, 96 * MIB, 20, 4);
        assert!(shared * 80 <= 96 * MIB && shared >= MIB, "{shared}");
        // Never below the floor, never above what was configured.
        assert_eq!(batch_bytes_within_budget(8 * MIB, MIB, 100, 10), MIN_SHARED_BATCH_BYTES);
        assert_eq!(batch_bytes_within_budget(64 * 1024, MIB, 100, 10), 64 * 1024);
    }
    use super::*;

    fn c(folder: usize, uid: u32, date: i64, size: u64, state: State) -> Candidate {
        Candidate {
            folder,
            uid,
            internal_date: date,
            size,
            state,
        }
    }

    const LIMITS: Limits = Limits {
        max_items: 500_000,
        max_message_bytes: 1000,
    };

    #[test]
    fn merges_folders_newest_first() {
        let cs = [
            c(0, 1, 100, 10, State::Pending),
            c(1, 1, 300, 10, State::Pending),
            c(0, 2, 200, 10, State::Pending),
            c(1, 2, 50, 10, State::Pending),
        ];
        assert_eq!(plan(&cs, LIMITS).copy, vec![1, 2, 0, 3]);
    }

    #[test]
    fn ties_on_date_break_by_folder_then_newest_uid() {
        let cs = [
            c(1, 5, 100, 1, State::Pending),
            c(0, 3, 100, 1, State::Pending),
            c(0, 4, 100, 1, State::Pending),
        ];
        assert_eq!(plan(&cs, LIMITS).copy, vec![2, 1, 0]);
    }

    #[test]
    fn skips_too_large_and_leaves_out_copied() {
        let cs = [
            c(0, 1, 100, 1001, State::Pending),
            c(0, 2, 200, 1000, State::Pending),
            c(0, 3, 300, 10, State::Copied),
            c(0, 4, 400, 10, State::Failed),
            c(0, 5, 500, 10, State::Gone),
        ];
        let p = plan(&cs, LIMITS);
        assert_eq!(p.copy, vec![3, 1]);
        assert_eq!(p.skip, vec![(0, SkipReason::TooLarge)]);
        assert_eq!(p.in_scope, 4);
        assert_eq!(p.already_copied, 1);
    }

    #[test]
    fn item_cap_keeps_the_newest() {
        let cs: Vec<Candidate> = (0..10).map(|i| c(0, i, i64::from(i) * 10, 1, State::Pending)).collect();
        let p = plan(
            &cs,
            Limits {
                max_items: 3,
                max_message_bytes: 1000,
            },
        );
        assert_eq!(p.copy, vec![9, 8, 7]);
        assert_eq!(p.skip.len(), 7);
        assert!(p.skip.iter().all(|(_, r)| *r == SkipReason::OverItemCap));
        assert_eq!(p.in_scope, 3);
    }

    #[test]
    fn a_message_the_target_refused_is_tried_again() {
        // Refused by the target's size limit on an earlier run: the limit
        // may have been raised since, so it is planned like any other.
        let cands = [c(0, 1, 100, 10, State::Skipped(SkipReason::TargetRefused))];
        let p = plan(&cands, LIMITS);
        assert_eq!(p.copy, [0]);
        assert!(p.skip.is_empty());
    }

    #[test]
    fn earlier_cap_skips_come_back_when_in_scope() {
        let cs = [
            c(0, 1, 100, 1, State::Skipped(SkipReason::OverItemCap)),
            c(0, 2, 50, 1, State::InFlight),
        ];
        assert_eq!(plan(&cs, LIMITS).copy, vec![0, 1]);
    }

    #[test]
    fn batches_respect_count_bytes_and_folder() {
        let cs: Vec<Candidate> = (0..7)
            .map(|i| c((i % 2) as usize, i, 100 - i64::from(i), 400, State::Pending))
            .collect();
        let p = plan(
            &cs,
            Limits {
                max_items: 100,
                max_message_bytes: 1000,
            },
        );
        let b = batches(&cs, &p.copy, 2, 10_000);
        assert!(b.iter().all(|b| b.items.len() <= 2));
        assert!(b.iter().all(|b| b.items.iter().all(|&i| cs[i].folder == b.folder)));
        let mut all: Vec<usize> = b.iter().flat_map(|b| b.items.clone()).collect();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        let by_bytes = batches(&cs, &p.copy, 100, 800);
        assert!(by_bytes.iter().all(|b| b.bytes <= 800));
        assert_eq!(by_bytes[0].items, vec![0, 2], "newest first");
    }

    #[test]
    fn a_message_larger_than_the_byte_budget_gets_its_own_batch() {
        let cs = [c(0, 1, 10, 5000, State::Pending), c(0, 2, 9, 10, State::Pending)];
        let b = batches(&cs, &[0, 1], 100, 100);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].items, vec![0]);
    }

    #[test]
    fn mailboxes_at_once_share_the_source_hosts_connections_one_each_before_any_gets_more() {
        // 20 mailboxes, 100 slots: the configured 4 each.
        assert_eq!(connections_per_mailbox(4, 10, Some(100), 20), 4);
        // 100 mailboxes, 100 slots: one each, not 4 for the first 25.
        assert_eq!(connections_per_mailbox(4, 10, Some(100), 100), 1);
        assert_eq!(connections_per_mailbox(4, 10, Some(100), 40), 2);
        // More mailboxes than slots: still one (they wait for a slot).
        assert_eq!(connections_per_mailbox(4, 10, Some(100), 200), 1);
        // The per-user cap, and a source without a host cap.
        assert_eq!(connections_per_mailbox(4, 2, Some(100), 1), 2);
        assert_eq!(connections_per_mailbox(8, 10, None, 500), 8);
    }
}
