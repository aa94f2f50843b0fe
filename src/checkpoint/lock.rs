//! The run lock: one run at a time per state DB. Two runs on the same DB
//! would copy the same messages twice and overwrite each other's records,
//! so the second one is refused with what to do instead.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{CheckpointError, Result};

/// Held for the whole run: a second run on the same state DB is refused.
pub struct RunLock {
    _file: File,
}

/// Takes the run lock next to the state DB.
pub fn lock(db_path: &Path) -> Result<RunLock> {
    let lock_path = lock_path(db_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| CheckpointError(format!("cannot create lock file {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(CheckpointError(format!(
            "another cutover run is using the state DB {} (lock {} is held); wait for it to finish, or give this run its own [state] path",
            db_path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(CheckpointError(format!("cannot lock {}: {e}", lock_path.display())))
        }
    }
}

fn lock_path(db_path: &Path) -> PathBuf {
    let mut s = db_path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_is_refused_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let held = lock(&db).unwrap();
        let err = lock(&db).err().unwrap();
        assert!(err.0.contains("another cutover run"), "{err}");
        drop(held);
        assert!(lock(&db).is_ok());
    }
}
