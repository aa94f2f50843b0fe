//! The dashboard's HTTP/1 server (hyper): GET and HEAD only, the token
//! checked before anything else is answered, hardening headers on every
//! response, every connection bounded in time and in number, SIGINT and
//! SIGTERM stop it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::auth::{Token, authorized};
use super::query::{UserQuery, get, item_query, parse_pairs};
use super::snapshot::{REFRESH, Shared, Snapshot};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::report::SyncReport;

/// A client gets this long to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection lives longer (the page's polling opens another).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// DB reads on request (searches, histories) at once.
const DB_READERS: usize = 4;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Only the server itself: no inline script or style, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct Config {
    pub listen: SocketAddr,
    pub token: Option<Token>,
    pub state_path: PathBuf,
    pub snapshot: Shared,
}

struct App {
    token: Option<Token>,
    state_path: PathBuf,
    snapshot: Shared,
    /// Read-only connections for the reads made on request, kept for reuse.
    pool: Mutex<Vec<Checkpoint>>,
    readers: Semaphore,
}

type Resp = Response<Full<Bytes>>;

/// Listens and serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), String> {
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e}; choose another address or port with --listen",
            config.listen
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        use std::io::Write as _;
        // The first stdout line says where the dashboard is (never the token).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "serving http://{addr}/ (state DB {}, read-only{}); Ctrl-C stops",
            config.state_path.display(),
            if config.token.is_some() { ", token required" } else { "" }
        );
        let _ = out.flush();
    }
    let app = Arc::new(App {
        token: config.token,
        state_path: config.state_path,
        snapshot: config.snapshot,
        pool: Mutex::new(Vec::new()),
        readers: Semaphore::new(DB_READERS),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many connections; closing this one");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(app.clone(), req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), svc);
                    match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                        Ok(Err(e)) => tracing::debug!(%peer, "connection ended: {e}"),
                        Err(_) => tracing::debug!(%peer, "connection closed after {CONNECTION_LIFETIME:?}"),
                        Ok(Ok(())) => {}
                    }
                    drop(slot);
                });
            }
            _ = &mut stop => {
                eprintln!("dashboard stopped");
                return Ok(());
            }
        }
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// A response with the hardening headers every response carries.
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("Cross-Origin-Resource-Policy", HeaderValue::from_static("same-origin"));
    r
}

fn text(status: StatusCode, body: String) -> Resp {
    respond(status, "text/plain; charset=utf-8", body)
}

fn json(value: &impl Serialize) -> Resp {
    match serde_json::to_vec(value) {
        Ok(v) => respond(StatusCode::OK, "application/json; charset=utf-8", v),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {e}"),
        ),
    }
}

fn json_error(status: StatusCode, message: &str) -> Resp {
    let body = serde_json::json!({ "error": message }).to_string();
    respond(status, "application/json; charset=utf-8", body)
}

/// Whether a Host header names this machine's loopback (or is absent, as
/// from a client that is not a browser).
fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // Never the query string: it may hold the token.
    tracing::debug!(%method, path, "request");
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the dashboard is read-only: GET and HEAD only\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let headers = req.headers();
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let pairs = parse_pairs(req.uri().query().unwrap_or(""));
    match &app.token {
        None => {
            if !loopback_host(header_str(header::HOST)) {
                return Ok(text(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this dashboard answers only to a loopback address (http://127.0.0.1:PORT/ or http://localhost:PORT/); \
                     to reach it from elsewhere, start it with --token-file\n"
                        .into(),
                ));
            }
        }
        Some(token) => {
            let query_token = if path == "/" { get(&pairs, "token") } else { None };
            if !authorized(
                token,
                header_str(header::AUTHORIZATION),
                header_str(header::COOKIE),
                None,
            ) {
                if query_token.is_some_and(|t| authorized(token, None, None, Some(t))) {
                    // The first page load: a session cookie, and the token
                    // out of the address bar and the history.
                    let mut r = text(StatusCode::SEE_OTHER, "signed in\n".into());
                    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
                    if let Ok(v) = HeaderValue::from_str(&token.set_cookie()) {
                        r.headers_mut().insert(header::SET_COOKIE, v);
                    }
                    return Ok(r);
                }
                let mut r = text(
                    StatusCode::UNAUTHORIZED,
                    "this dashboard needs its token: open /?token=TOKEN once in the browser, \
                     or send the header Authorization: Bearer TOKEN\n"
                        .into(),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"cutover\""),
                );
                return Ok(r);
            }
        }
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    Ok(route(&app, &path, &query).await)
}

async fn route(app: &Arc<App>, path: &str, query: &str) -> Resp {
    match path {
        "/" | "/index.html" => respond(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => respond(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        "/app.css" => respond(StatusCode::OK, "text/css; charset=utf-8", APP_CSS),
        "/api/summary" => {
            let snap = snapshot(app);
            json(&Summary {
                version: env!("CARGO_PKG_VERSION"),
                refresh_seconds: REFRESH.as_secs(),
                snapshot: &snap,
            })
        }
        "/api/users" => {
            let snap = snapshot(app);
            let q = UserQuery::parse(query);
            let (matched, rows) = q.page(&snap.users);
            json(&serde_json::json!({
                "total": snap.users.len(),
                "matched": matched,
                "offset": q.offset,
                "limit": q.limit,
                "rows": rows,
            }))
        }
        "/api/user" => {
            let pairs = parse_pairs(query);
            let Some(email) = get(&pairs, "email").map(crate::checkpoint::user_key) else {
                return json_error(StatusCode::BAD_REQUEST, "name the user: /api/user?email=ADDRESS");
            };
            let snap = snapshot(app);
            let Some(user) = snap.users.iter().find(|u| u.status.email == email).cloned() else {
                return json_error(StatusCode::NOT_FOUND, "no such user in the state DB");
            };
            let who = email.clone();
            match with_db(app, move |cp| cp.syncs(&who)).await {
                Ok(syncs) => {
                    let syncs: Vec<SyncReport> = syncs.iter().map(SyncReport::new).collect();
                    json(&serde_json::json!({ "user": user, "syncs": syncs }))
                }
                Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
            }
        }
        "/api/items" => {
            let q = item_query(query);
            match with_db(app, move |cp| cp.search_items(&q, crate::report::UNCONFIRMED)).await {
                Ok(page) => json(&page),
                Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
            }
        }
        "/favicon.ico" => respond(StatusCode::NO_CONTENT, "image/x-icon", Bytes::new()),
        _ => text(StatusCode::NOT_FOUND, "no such page\n".into()),
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    version: &'static str,
    refresh_seconds: u64,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
}

fn snapshot(app: &App) -> Arc<Snapshot> {
    app.snapshot.read().map(|s| s.clone()).unwrap_or_default()
}

/// Runs a read on a read-only connection of the pool (opened when none is
/// free), off the async threads, at most [`DB_READERS`] at once.
async fn with_db<T: Send + 'static>(
    app: &Arc<App>,
    read: impl FnOnce(&Checkpoint) -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, String> {
    let _permit = app.readers.acquire().await.map_err(|e| e.to_string())?;
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let cp = match app.pool.lock().ok().and_then(|mut p| p.pop()) {
            Some(cp) => cp,
            None => Checkpoint::open_read_only(&app.state_path).map_err(|e| e.to_string())?,
        };
        let out = read(&cp).map_err(|e| e.to_string());
        // A connection that failed is dropped, not reused.
        if out.is_ok()
            && let Ok(mut pool) = app.pool.lock()
        {
            pool.push(cp);
        }
        out
    })
    .await
    .map_err(|e| format!("the read failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for ok in [
            None,
            Some("127.0.0.1:8080"),
            Some("localhost:8080"),
            Some("LOCALHOST"),
            Some("[::1]:8080"),
            Some("127.0.0.2"),
        ] {
            assert!(loopback_host(ok), "{ok:?}");
        }
        for bad in [
            Some("evil.example:8080"),
            Some("10.0.0.1:8080"),
            Some("localhost.evil.example"),
            Some("[::2]:80"),
        ] {
            assert!(!loopback_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_response_is_hardened() {
        let r = respond(StatusCode::OK, "text/plain", "x");
        let h = r.headers();
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe") && !csp.contains("http"));
    }

    /// The page's assets load nothing from elsewhere and use no inline
    /// script or style (which the CSP would block).
    #[test]
    fn assets_are_self_contained() {
        for asset in [INDEX_HTML, APP_JS, APP_CSS] {
            // The SVG namespace is a name, never fetched.
            let asset = asset.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!asset.contains("http://") && !asset.contains("https://"));
            assert!(!asset.contains("//cdn"));
        }
        assert!(!INDEX_HTML.contains("<style") && !INDEX_HTML.contains(" style=") && !INDEX_HTML.contains("onclick"));
        assert!(INDEX_HTML.contains("<script src=\"/app.js\""));
    }
}
