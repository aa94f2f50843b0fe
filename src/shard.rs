//! Scale-out without a coordinator: `--shard K/N` picks the users of the
//! users CSV that belong to shard K of N, so N machines (a Kubernetes
//! Indexed Job, a Slurm array, GNU parallel over ssh) can each run one
//! shard from the same CSV and the same config.
//!
//! A user's shard depends only on its own address (a SHA-256 of the
//! lower-cased EmailAddress, modulo N), never on the other rows: adding or
//! removing users never moves anyone else to another shard, and every
//! machine computes the same split without talking to the others. Each
//! shard keeps its own state DB (`cutover.db` becomes
//! `cutover.shard-K-of-N.db`), and the DB remembers which shard it was made
//! for, so a rerun with a different N (which would move users to a shard
//! whose DB has never seen them, and copy them again) is refused.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Shard `index` of `count`, counted from 0 (Kubernetes'
/// JOB_COMPLETION_INDEX counts from 0 too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The shard this address belongs to, out of `count`.
    pub fn of(email: &str, count: u32) -> u32 {
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
    }

    /// Whether this address is this shard's to migrate.
    pub fn contains(&self, email: &str) -> bool {
        Shard::of(email, self.count) == self.index
    }

    /// The users of this shard, in the users file's order.
    pub fn select<T>(&self, users: Vec<T>, email: impl Fn(&T) -> &str) -> Vec<T> {
        users.into_iter().filter(|u| self.contains(email(u))).collect()
    }

    /// This shard's own state DB next to the configured one:
    /// `cutover.db` → `cutover.shard-2-of-8.db`.
    pub fn state_path(&self, configured: &Path) -> PathBuf {
        let stem = configured
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cutover".to_owned());
        let name = match configured.extension() {
            Some(ext) => format!(
                "{stem}.shard-{}-of-{}.{}",
                self.index,
                self.count,
                ext.to_string_lossy()
            ),
            None => format!("{stem}.shard-{}-of-{}", self.index, self.count),
        };
        configured.with_file_name(name)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let usage = "write it as K/N: this is shard K of N, K counting from 0 (0/4, 1/4, 2/4, 3/4)";
        let (k, n) = s.split_once('/').ok_or_else(|| format!("--shard {s:?}: {usage}"))?;
        let index: u32 = k
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: K is not a number; {usage}"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: N is not a number; {usage}"))?;
        if count == 0 {
            return Err(format!("--shard {s:?}: N must be at least 1; {usage}"));
        }
        if index >= count {
            return Err(format!(
                "--shard {s:?}: K must be below N (shards count from 0, the last one is {}/{count})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user{i}@tenant{}.example", i % 7)).collect()
    }

    #[test]
    fn every_user_is_in_exactly_one_shard() {
        let users = addresses(2000);
        let mut seen = vec![0u32; users.len()];
        for index in 0..5 {
            let shard = Shard { index, count: 5 };
            let mine = shard.select(users.iter().enumerate().collect(), |(_, e)| e.as_str());
            // A fair split: no shard is far from a fifth of the users.
            assert!((300..=500).contains(&mine.len()), "shard {shard} has {}", mine.len());
            for (i, _) in mine {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    #[test]
    fn adding_users_moves_nobody_else() {
        let before = addresses(500);
        let mut after = addresses(800);
        after.reverse();
        let shard = Shard { index: 3, count: 8 };
        let old: Vec<&String> = shard.select(before.iter().collect(), |e| e.as_str());
        let new: Vec<&String> = shard.select(after.iter().collect(), |e| e.as_str());
        for e in &old {
            assert!(new.contains(e), "{e} left its shard when users were added");
        }
        assert!(new.len() > old.len());
    }

    #[test]
    fn the_split_ignores_case_and_surrounding_spaces() {
        assert_eq!(Shard::of("Alice@Example.COM", 16), Shard::of("alice@example.com", 16));
        assert_eq!(Shard::of(" alice@example.com", 16), Shard::of("alice@example.com", 16));
    }

    #[test]
    fn the_split_is_stable_across_versions() {
        // The first 8 bytes of SHA-256("alice@example.com"), modulo N. If
        // this changes, shards of running migrations would be reshuffled.
        let h = u64::from_be_bytes(Sha256::digest(b"alice@example.com")[..8].try_into().unwrap());
        assert_eq!(Shard::of("alice@example.com", 1000), (h % 1000) as u32);
        assert_eq!(Shard::of("alice@example.com", 1), 0);
    }

    #[test]
    fn parses_k_of_n_and_explains_mistakes() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        let e = "4/4".parse::<Shard>().unwrap_err();
        assert!(e.contains("the last one is 3/4"), "{e}");
        assert!("1/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("3".parse::<Shard>().unwrap_err().contains("K/N"));
        assert!("a/4".parse::<Shard>().unwrap_err().contains("K is not a number"));
    }

    #[test]
    fn each_shard_gets_its_own_state_db_next_to_the_configured_one() {
        let s = Shard { index: 2, count: 8 };
        assert_eq!(
            s.state_path(Path::new("/var/lib/cutover/cutover.db")),
            PathBuf::from("/var/lib/cutover/cutover.shard-2-of-8.db")
        );
        assert_eq!(s.state_path(Path::new("state")), PathBuf::from("state.shard-2-of-8"));
    }
}
