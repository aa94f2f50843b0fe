//! APPEND, the target side's write path: one message at a time, pipelined
//! with LITERAL+ (every command and literal sent back to back, answers read
//! afterwards), or as one MULTIAPPEND transaction (RFC 3502). Apart from
//! [`conn`](super::conn) because it is the one part that sends message
//! bodies, with its own write deadline and its own handling of the answers
//! of many tags at once.

use std::time::Duration;

use async_imap::imap_proto::{self, Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use super::classify::{answer_text, classify_bye, classify_status, excerpt, io_error, timed};
use super::conn::Conn;
use super::wire::{first_append_uid, quote};
use crate::error::{Error, Result};

/// The answer to one APPEND: the APPENDUID (UIDVALIDITY, UID) if reported.
pub type AppendResult = Result<Option<(u32, u32)>>;

impl Conn {
    /// APPEND with flags and INTERNALDATE, byte-identical. Uses LITERAL+
    /// when offered (one round trip instead of two) and returns the
    /// APPENDUID (UIDVALIDITY, UID) when the server reports it.
    pub async fn append(&mut self, wire_name: &str, flags: &str, internal_date: &str, raw: &[u8]) -> AppendResult {
        let result = self.append_inner(wire_name, flags, internal_date, raw).await;
        self.broken_if_retryable(result)
    }

    async fn append_inner(&mut self, wire_name: &str, flags: &str, internal_date: &str, raw: &[u8]) -> AppendResult {
        let t = self.timeout;
        let non_sync = self.has_capability("LITERAL+");
        let binary = raw.contains(&0);
        let literal = format!(
            "{}{{{}{}}}",
            if binary { "~" } else { "" },
            raw.len(),
            if non_sync { "+" } else { "" }
        );
        let command = format!("APPEND {} ({flags}) \"{internal_date}\" {literal}", quote(wire_name));
        let tag = timed(t, "APPEND", self.session.run_command(&command))
            .await?
            .map_err(|e| io_error("APPEND", e))?;
        if !non_sync {
            let resp = timed(t, "APPEND", self.session.read_response())
                .await?
                .map_err(|e| io_error("APPEND", e))?
                .ok_or_else(|| Error::transient("APPEND: the server closed the connection"))?;
            match resp.parsed() {
                Response::Continue(_) => {}
                Response::Done { status, outcome, .. } => {
                    let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
                    return Err(classify_status("APPEND", status, info));
                }
                other => {
                    return Err(Error::transient(format!(
                        "APPEND: expected a continuation, got {}",
                        excerpt(&format!("{other:?}"))
                    )));
                }
            }
        }
        self.write_literal(raw).await?;
        let responses = self.read_until_done(&tag, "APPEND").await?;
        Ok(responses.last().and_then(|r| match r {
            Response::Done { outcome, .. } => first_append_uid(outcome.code.as_ref()),
            _ => None,
        }))
    }

    /// Sends one message literal and the line end that completes its
    /// APPEND, in one write.
    async fn write_literal(&mut self, raw: &[u8]) -> Result<()> {
        let stream = self.session.get_mut();
        timed(literal_write_limit(self.timeout, raw.len()), "APPEND", async {
            stream.write_all(raw).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("APPEND", e))
    }

    /// Pipelined APPENDs into one folder: with LITERAL+ every command and
    /// its literal go out back to back and the answers are read afterwards,
    /// so the server never waits on a round trip. One result per message,
    /// in order; an outer error means the connection failed and the
    /// messages without an answer are unsettled (they may or may not be
    /// stored). Without LITERAL+ this falls back to one APPEND at a time.
    pub async fn append_many(
        &mut self,
        wire_name: &str,
        items: &[(String, String, &[u8])],
    ) -> Result<Vec<AppendResult>> {
        if !self.has_capability("LITERAL+") || items.len() < 2 {
            let mut out = Vec::with_capacity(items.len());
            for (flags, date, raw) in items {
                match self.append(wire_name, flags, date, raw).await {
                    Err(e) if e.is_retryable() || e.kind == crate::error::ErrorKind::Fatal => {
                        if out.is_empty() {
                            return Err(e);
                        }
                        // The rest are unsettled; the last result says why.
                        out.push(Err(e));
                        return Ok(out);
                    }
                    r => out.push(r),
                }
            }
            return Ok(out);
        }
        if self.has_capability("MULTIAPPEND") {
            match self.multi_append(wire_name, items).await {
                Ok(results) => return Ok(results),
                // The server refused the group as a whole (one message too
                // large, say) and stored none of it: send them one by one so
                // only the bad one fails.
                Err(e) if matches!(e.kind, crate::error::ErrorKind::Item | crate::error::ErrorKind::Refused) => {
                    tracing::debug!("MULTIAPPEND refused ({e}); appending one by one");
                }
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
        let result = self.append_many_inner(wire_name, items).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// One APPEND command carrying every message (RFC 3502 MULTIAPPEND,
    /// literals sent with LITERAL+): the server stores them in one
    /// transaction, all or none, which for Dovecot is several times faster
    /// than one APPEND per message. The UIDs come back as one APPENDUID
    /// set, in the order of the messages.
    async fn multi_append(&mut self, wire_name: &str, items: &[(String, String, &[u8])]) -> Result<Vec<AppendResult>> {
        let t = self.timeout;
        let total: usize = items.iter().map(|(_, _, raw)| raw.len()).sum();
        let write_limit = literal_write_limit(t, total);
        let part = |flags: &str, date: &str, raw: &[u8]| {
            let binary = if raw.contains(&0) { "~" } else { "" };
            format!("({flags}) \"{date}\" {binary}{{{}+}}", raw.len())
        };
        let (flags, date, raw) = &items[0];
        let command = format!("APPEND {} {}", quote(wire_name), part(flags, date, raw));
        let tag = timed(t, "APPEND", self.session.run_command(&command))
            .await?
            .map_err(|e| io_error("APPEND", e))?;
        let stream = self.session.get_mut();
        timed(write_limit, "APPEND", async {
            stream.write_all(raw).await?;
            for (flags, date, raw) in &items[1..] {
                stream
                    .write_all(format!(" {}\r\n", part(flags, date, raw)).as_bytes())
                    .await?;
                stream.write_all(raw).await?;
            }
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        })
        .await?
        .map_err(|e| io_error("APPEND", e))?;
        let responses = self.read_until_done(&tag, "APPEND").await?;
        let mut uids: Vec<(u32, u32)> = Vec::with_capacity(items.len());
        if let Some(Response::Done { outcome, .. }) = responses.last()
            && let Some(ResponseCode::AppendUid(validity, set)) = &outcome.code
        {
            for member in set {
                match member {
                    imap_proto::rfc4315::UidSetMember::Uid(u) => uids.push((*validity, *u)),
                    imap_proto::rfc4315::UidSetMember::UidRange(r) => {
                        uids.extend(r.clone().map(|u| (*validity, u)));
                    }
                }
            }
        }
        if uids.len() != items.len() {
            // Stored, but the server did not say where: no ids to record.
            return Ok(items.iter().map(|_| Ok(None)).collect());
        }
        Ok(uids.into_iter().map(|u| Ok(Some(u))).collect())
    }

    async fn append_many_inner(
        &mut self,
        wire_name: &str,
        items: &[(String, String, &[u8])],
    ) -> Result<Vec<AppendResult>> {
        let t = self.timeout;
        let mut tags = Vec::with_capacity(items.len());
        for (flags, date, raw) in items {
            let binary = if raw.contains(&0) { "~" } else { "" };
            let command = format!(
                "APPEND {} ({flags}) \"{date}\" {binary}{{{}+}}",
                quote(wire_name),
                raw.len()
            );
            let tag = timed(t, "APPEND", self.session.run_command(&command))
                .await?
                .map_err(|e| io_error("APPEND", e))?;
            self.write_literal(raw).await?;
            tags.push(tag);
        }
        let mut results: Vec<Option<AppendResult>> = (0..items.len()).map(|_| None).collect();
        let mut pending = items.len();
        while pending > 0 {
            let resp = timed(t, "APPEND", self.session.read_response())
                .await?
                .map_err(|e| io_error("APPEND", e))?
                .ok_or_else(|| Error::transient("APPEND: the server closed the connection"))?;
            match resp.parsed() {
                Response::Done { tag, status, outcome } => {
                    let Some(i) = tags.iter().position(|t| t == tag) else {
                        continue;
                    };
                    let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
                    results[i] = Some(match status {
                        Status::Ok => Ok(first_append_uid(outcome.code.as_ref())),
                        _ => Err(classify_status("APPEND", status, info)),
                    });
                    pending -= 1;
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => {
                    let info = &answer_text(outcome.code.as_ref(), outcome.information.as_deref());
                    return Err(classify_bye("APPEND", info));
                }
                _ => {}
            }
        }
        Ok(results.into_iter().map(|r| r.expect("every tag answered")).collect())
    }
}

/// How long sending `bytes` of literals may take: the command timeout plus
/// a second per 256 KiB, so a slow link is not mistaken for a dead one.
fn literal_write_limit(timeout: Duration, bytes: usize) -> Duration {
    timeout + Duration::from_secs((bytes / (256 * 1024)) as u64)
}
