//! Copies whose message was deleted on the source. Users delete mail on the
//! old server until cutover day; by default the copies stay in the target
//! (nothing a user can still want is lost before the switch) and `status`
//! counts them as deleted on source. For the final pass,
//! `--mirror-deletions` deletes them from the target too, within
//! `max_delete_percent` of a mailbox's copies per run (like rclone's
//! `--max-delete`): a source folder emptied by mistake, or a server
//! answering oddly, must not empty the new mailbox.

use crate::checkpoint::Record;
use crate::error::{Error, ErrorKind};
use crate::roster::UserJob;

use super::{Shared, UserStats, open_target};

/// Deletes from the target the copies of messages deleted on the source,
/// when the run mirrors deletions and the target can delete. Not on a
/// label-based source (Gmail): a message gone from one label folder is
/// usually still in another, or in All Mail.
pub(super) async fn mirror(
    shared: &Shared,
    user: &UserJob,
    label_based: bool,
    stats: &mut UserStats,
) -> Result<(), Error> {
    let rules = shared.run.copy.deletions;
    if !rules.mirror || label_based || shared.dry_run || !shared.run.target.capabilities().delete {
        return Ok(());
    }
    let email = &user.email;
    shared.recorder.flush().await?;
    let kept = shared.db(|cp| cp.kept_copies(email))?;
    if kept.is_empty() {
        return Ok(());
    }
    let copies = shared.db(|cp| cp.user_status(email))?.copied + kept.len() as u64;
    let share = kept.len() as u64 * 100 / copies.max(1);
    if !rules.force && kept.len() as u64 * 100 > u64::from(rules.max_percent) * copies {
        let reason = format!(
            "{} copies of messages deleted on the source were not deleted from the target: that is {share}% of the mailbox's {copies} copies, over [run] max_delete_percent = {}; check the source (a folder emptied by mistake?), then run with --force-deletions or raise max_delete_percent",
            kept.len(),
            rules.max_percent
        );
        tracing::warn!(user = %email, "{reason}");
        stats.left_behind.push((kept.len() as u64, reason));
        return Ok(());
    }
    let mut target = open_target(shared, user).await?;
    let mut failed = 0u64;
    let mut stopped = false;
    for copy in &kept {
        if shared.stop.stopped() || stopped {
            failed += 1;
            continue;
        }
        let Some(folder) = copy.target_ref.as_deref() else {
            continue;
        };
        match target.delete_message(folder, &copy.target_id).await {
            Ok(()) => {
                stats.deleted += 1;
                shared.recorder.record(Record::Deleted {
                    folder_id: copy.folder_id,
                    uid: copy.uid,
                });
            }
            Err(e) if e.kind == ErrorKind::Fatal => return Err(e),
            Err(e) => {
                failed += 1;
                tracing::warn!(user = %email, "could not delete a copy of a message deleted on the source: {e}");
                stopped = e.is_retryable();
            }
        }
    }
    target.close().await;
    shared.recorder.flush().await?;
    if failed > 0 && !shared.stop.stopped() {
        stats.left_behind.push((
            failed,
            format!("{failed} copies of messages deleted on the source could not be deleted from the target; run again to retry"),
        ));
    }
    Ok(())
}
