//! `cutover serve`: a read-only web dashboard over the state DB, to watch
//! a migration of thousands of mailboxes while `cutover migrate` runs (and
//! between its passes): overall and per-user progress and state, copies
//! per minute, throttling, each user's last error and sync history, and
//! every skipped or failed message, contact or event with its reason,
//! searchable.
//!
//! Why it is built this way:
//!
//! - It only reads. The DB is opened SQLite read-only
//!   ([`Checkpoint::open_read_only`](crate::checkpoint::Checkpoint::open_read_only)),
//!   without the run lock, so it can run beside a migrate (WAL lets a
//!   reader and the writer go on together); it answers GET and HEAD only.
//! - It stays fast with 10,000 users. A thread reads the DB every few
//!   seconds into a snapshot (`snapshot`: each table in one pass, a user's
//!   figures read again only when the user may have changed); requests
//!   answer from the snapshot, filtered, sorted and paged on the server
//!   (`query`), so the page only ever holds one page of users. Searches over
//!   the items and a user's sync history are read on request, paged in SQL.
//! - It loads nothing from anywhere: the page, its script and its style
//!   are in the binary (`assets/`, vanilla JS), and a Content-Security-Policy
//!   allowing only the server itself says so to the browser. The page
//!   polls the JSON endpoints every few seconds and updates in place.
//! - It is private by default: it listens on loopback, and answers only to
//!   a loopback Host (a web page elsewhere cannot reach it by DNS
//!   rebinding). Listening elsewhere needs a token (`auth`), and then
//!   every request needs it. The state DB names every mailbox and the
//!   subjects of skipped mail, so there is no anonymous mode off loopback.
//! - Every connection is bounded in time and in number (`http`); SIGINT
//!   and SIGTERM stop it.

mod auth;
mod http;
mod query;
mod snapshot;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use auth::{TOKEN_ENV, Token};
pub use query::{UserQuery, UserSort, item_query, parse_pairs};
pub use snapshot::{Snapshot, UserSummary};

/// What `cutover serve` was asked to do.
#[derive(Debug)]
pub struct Options {
    pub state_path: PathBuf,
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}

/// Why a dashboard listening on `listen` without a token is refused, or
/// `None` when it may (loopback).
pub fn refuse_without_token(listen: &SocketAddr) -> Option<String> {
    if listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "refusing to listen on {listen} without a token: anyone who can reach it could read every mailbox's \
         migration state. Make a token (`openssl rand -hex 32 > serve.token && chmod 600 serve.token`) and add \
         --token-file serve.token (or set {TOKEN_ENV}), or listen on 127.0.0.1 and reach it through an SSH tunnel"
    ))
}

/// Serves the dashboard until SIGINT or SIGTERM. Prints the address it
/// listens on (one line on stdout, never the token); errors say what to do.
pub async fn serve(options: Options) -> Result<(), String> {
    let token = Token::load(options.token_file.as_deref())?;
    if token.is_none()
        && let Some(why) = refuse_without_token(&options.listen)
    {
        return Err(why);
    }
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let snapshot = snapshot::start(&options.state_path, stopped).map_err(|e| e.to_string())?;
    let outcome = http::run(http::Config {
        listen: options.listen,
        token,
        state_path: options.state_path.clone(),
        snapshot,
    })
    .await;
    let _ = stop.send(());
    outcome
}
