//! `cutover serve` end to end: the real binary serves the dashboard over
//! the state DB of a real migration while it runs (a Dovecot source into
//! the time-scaled Graph emulator, with a small request budget so the copy
//! takes a while); the JSON endpoints show the users and their numbers
//! moving, headless Chromium renders the page (its script runs, the users
//! sort and filter from the URL fragment, a screenshot is a real picture),
//! and the schedule of `migrate --every` appears once its table has a row.
//! Then the guards: a non-loopback address without a token is refused, a
//! token guards every request, only GET and HEAD are answered, SIGTERM
//! stops it, and the token is never printed.
//!
//! No assertion is timed: the loops that wait for the migration or the
//! dashboard only have generous hang guards.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::browser::{chromium, chromium_run, decode_png};
use support::dovecot::{Dovecot, DovecotOptions};
use support::emulator::{CLIENT, Emulator, TENANT};
use support::mailgen;

const SECRET: &str = "graph-s3cret-value";
const SECRET_ENV: &str = "CUTOVER_TEST_GRAPH_SECRET";
const TOKEN: &str = "dashboard-token-4f1c9a7e2b6d8035";
/// Nothing here waits longer than this for anything.
const HANG_GUARD: Duration = Duration::from_secs(300);

fn user(n: usize) -> (String, String) {
    (format!("user{n}@example.test"), format!("pw-{n}-s3cret"))
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}\nstdout:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Waits until `check` gives a value, polling; panics with `what` after
/// the hang guard.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < HANG_GUARD, "hang guard: still waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

// --- the dashboard process ---------------------------------------------------

/// A running `cutover serve`; stopped with SIGTERM when dropped.
struct Serve {
    child: Child,
    port: u16,
    first_line: String,
}

impl Serve {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("serve")
            .args(args)
            .current_dir(dir)
            .env_remove("CUTOVER_SERVE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start cutover serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the first line of cutover serve");
        let Some(port) = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "cutover serve did not say where it listens: {line:?}\n{}",
                explain(&out)
            );
        };
        Serve {
            child,
            port,
            first_line: line,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GETs a JSON endpoint (with the token's header if given).
    fn json(&self, path: &str) -> Value {
        let (status, _, body) = request(self.port, "GET", path, &[]);
        assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e})"))
    }

    /// SIGTERM, and what it printed; it must stop by itself.
    fn stop(mut self) -> Output {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < HANG_GUARD,
                "hang guard: serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stdout = self.first_line.clone();
        let mut stderr = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let status = self.child.wait().unwrap();
        Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection: status, head, body.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 2\r\n\r\n{}");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, head, raw[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// --- the migration -------------------------------------------------------------

/// Three mailboxes of 150 messages (one over the size limit each) and a
/// fourth whose password is wrong.
struct Migration {
    _source: Dovecot,
    _emulator: support::emulator::RunningEmulator,
    dir: tempfile::TempDir,
}

const MESSAGES: usize = 150;

impl Migration {
    fn new() -> Migration {
        let users: Vec<(String, String)> = (1..=4).map(user).collect();
        let source = Dovecot::start(DovecotOptions {
            users: users.clone(),
            ..Default::default()
        });
        for (n, (email, _)) in users.iter().enumerate().take(3) {
            let msgs = mailgen::generate(700 + n as u64, MESSAGES - 1, 1500);
            source.deliver(email, "INBOX", &msgs[..100]);
            source.deliver(email, "Archive", &msgs[100..]);
            source.deliver(email, "INBOX", &[mailgen::big_message(300 * 1024, n as u64)]);
        }
        let emulator = Emulator::new()
            .client_secret(SECRET)
            .seed(11)
            .time_scale(0.01)
            .quiet()
            .start();
        let dir = tempfile::tempdir().unwrap();
        // A budget of 40 requests per (scaled) 10 minutes per mailbox: a few
        // requests a second, so the copy lasts a while.
        let config = format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
             [target]\nkind = \"graph\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n\
             client_secret_env = \"{SECRET_ENV}\"\nendpoint = \"{base}\"\nauthority = \"{base}\"\n\
             timeout_seconds = 20\nlimits_time_scale = 0.01\nrequests_per_10_minutes = 40\n\n\
             [limits]\nmax_message_bytes = 102400\n\n\
             [state]\npath = \"state.db\"\n",
            source.port(),
            base = emulator.base_url,
        );
        std::fs::write(dir.path().join("cutover.toml"), config).unwrap();
        let mut csv = String::from("EmailAddress,UserName,Password\r\n");
        for (n, (u, p)) in users.iter().enumerate() {
            let p = if n == 3 { "wrong-password" } else { p.as_str() };
            csv.push_str(&format!("{u},{u},{p}\r\n"));
        }
        std::fs::write(dir.path().join("users.csv"), csv).unwrap();
        Migration {
            _source: source,
            _emulator: emulator,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_migrate(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["migrate", "--config", "cutover.toml", "--users", "users.csv"])
            .env(SECRET_ENV, SECRET)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("migrate.log")).unwrap())
            .spawn()
            .expect("start cutover migrate")
    }
}

fn copied_of(users: &Value) -> u64 {
    users["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["copied"].as_u64().unwrap())
        .sum()
}

#[test]
fn dashboard_follows_a_running_migration() {
    let m = Migration::new();
    let mut migrate = m.start_migrate();
    wait_for("the state DB", || m.path("state.db").is_file().then_some(()));
    let serve = Serve::start(
        m.dir.path(),
        &["--config", "cutover.toml", "--listen", "127.0.0.1:0"],
        &[],
    );
    assert!(serve.first_line.contains("read-only"), "{}", serve.first_line);

    // While the migration runs: the users and their progress, moving.
    let (running_copied, total) = wait_for("a user copying while the migration runs", || {
        let users = serve.json("/api/users?sort=email");
        let copied = copied_of(&users);
        let total = users["total"].as_u64().unwrap();
        (copied > 0 && copied < 3 * (MESSAGES as u64 - 1) && total >= 3).then_some((copied, total))
    });
    assert!(
        migrate.try_wait().unwrap().is_none(),
        "the migration ended before the dashboard saw it run; the request budget is meant to slow it down"
    );
    let moved = wait_for("the copied count to grow", || {
        let c = copied_of(&serve.json("/api/users"));
        (c > running_copied).then_some(c)
    });
    eprintln!("dashboard saw {running_copied} then {moved} copied of {total} users");
    let summary = serve.json("/api/summary");
    assert!(summary["totals"]["users"].as_u64().unwrap() >= 3, "{summary}");
    assert!(summary["state_db"].as_str().unwrap().ends_with("state.db"));
    assert!(summary["error"].is_null(), "{summary}");

    // The page renders while the migration runs.
    let browser = chromium()
        .expect("the dashboard cannot be rendered: chromium is not installed (scripts/install-deps installs it)");
    let dom = dump_dom(browser, &serve.url("/"));
    assert!(
        dom.contains("data-dashboard=\"ready\""),
        "the page's script did not run:\n{dom}"
    );
    assert!(
        dom.contains("data-email=\"user1@example.test\""),
        "no user rows:\n{dom}"
    );

    // The migration ends; the dashboard ends with it.
    let start = Instant::now();
    let status = loop {
        if let Some(s) = migrate.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < HANG_GUARD, "hang guard: the migration did not end");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(1), "user4 cannot log in, so the run is partial");
    let users = wait_for("every user's final figures", || {
        let users = serve.json("/api/users?sort=email&limit=10");
        let rows = users["rows"].as_array().unwrap();
        let finished = rows.len() == 4
            && rows[..3]
                .iter()
                .all(|u| u["state"] == "done" && u["running_since"].is_null())
            && rows[3]["state"] == "failed";
        finished.then_some(users)
    });
    let rows = users["rows"].as_array().unwrap();
    for u in &rows[..3] {
        assert_eq!(u["copied"], MESSAGES as u64 - 1, "{u}");
        assert_eq!(u["skipped"], 1, "{u}");
        assert_eq!(u["skipped_by_reason"]["too large"], 1, "{u}");
        assert_eq!(u["progress"], 1.0, "{u}");
        assert_eq!(u["syncs"], 1, "{u}");
    }
    let failed = &rows[3];
    assert_eq!(failed["email"], "user4@example.test");
    assert!(!failed["last_error"].as_str().unwrap_or("").is_empty(), "{failed}");

    // Server-side sorting, filtering and paging.
    let page = serve.json("/api/users?sort=email&dir=desc&limit=2&offset=1");
    let emails: Vec<&str> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["user3@example.test", "user2@example.test"]);
    assert_eq!((page["matched"].as_u64(), page["total"].as_u64()), (Some(4), Some(4)));
    let problems = serve.json("/api/users?state=problems");
    assert_eq!(problems["rows"][0]["email"], "user4@example.test");
    assert_eq!(problems["matched"], 1);

    // The skipped messages, searchable, with their reason.
    let items = serve.json("/api/items?state=skipped&sort=user&dir=desc");
    assert_eq!(items["matched"], 3, "{items}");
    assert_eq!(items["rows"][0]["email"], "user3@example.test");
    assert_eq!(items["rows"][0]["reason"], "too large");
    assert!(
        items["rows"][0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("Large attachment")
    );
    let found = serve.json("/api/items?q=user2%40example&kind=mail");
    assert_eq!(found["matched"], 1, "{found}");
    assert_eq!(serve.json("/api/items?q=no-such-thing")["matched"], 0);

    // One user's sync history.
    let detail = serve.json("/api/user?email=User1@Example.test");
    let syncs = detail["syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), 1, "{detail}");
    assert_eq!(syncs[0]["state"], "done");
    assert_eq!(syncs[0]["copied"], MESSAGES as u64 - 1);

    // The passes, and copies per minute.
    let summary = serve.json("/api/summary");
    assert_eq!(summary["passes"][0]["users"], 4, "{summary}");
    let per_minute: u64 = wait_for("the copies per minute", || {
        let points = serve.json("/api/summary")["throughput"]["points"].clone();
        let n: u64 = points.as_array()?.iter().map(|p| p[1].as_u64().unwrap()).sum();
        (n == 3 * (MESSAGES as u64 - 1)).then_some(n)
    });
    assert_eq!(per_minute, 447);

    // Sorting and filtering from the URL fragment, in the browser.
    let dom = dump_dom(browser, &serve.url("/#sort=email:desc"));
    let at = |dom: &str, n: usize| dom.find(&format!("data-email=\"user{n}@example.test\""));
    assert!(dom.contains("data-dashboard=\"ready\""));
    let (a, b) = (at(&dom, 1), at(&dom, 3));
    assert!(a.is_some() && b.is_some(), "user rows missing:\n{dom}");
    assert!(b < a, "#sort=email:desc did not put user3 first");
    assert!(dom.contains("aria-sort=\"descending\""));
    let dom = dump_dom(browser, &serve.url("/#q=user2"));
    assert!(
        at(&dom, 2).is_some() && at(&dom, 1).is_none() && at(&dom, 3).is_none(),
        "#q=user2:\n{dom}"
    );
    let dom = dump_dom(browser, &serve.url("/#state=failed&iq=too%20large"));
    assert!(at(&dom, 4).is_some() && at(&dom, 1).is_none(), "#state=failed");
    assert!(dom.contains("3 items"), "the item search from the fragment:\n{dom}");

    // The schedule of `migrate --every`, as its loop writes it.
    let now = chrono::Utc::now().timestamp();
    {
        let db = rusqlite::Connection::open(m.path("state.db")).unwrap();
        db.busy_timeout(Duration::from_secs(30)).unwrap();
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS schedule (id INTEGER PRIMARY KEY CHECK (id = 1), every_seconds INTEGER NOT NULL, \
             pass INTEGER NOT NULL, pass_started_at INTEGER, next_pass_at INTEGER, updated_at INTEGER NOT NULL)",
        )
        .unwrap();
        db.execute(
            "INSERT OR REPLACE INTO schedule VALUES (1, 1800, 2, ?1, ?2, ?1)",
            rusqlite::params![now - 60, now + 1740],
        )
        .unwrap();
    }
    let schedule = wait_for("the next pass", || {
        let s = serve.json("/api/summary")["schedule"].clone();
        (!s.is_null()).then_some(s)
    });
    assert_eq!(schedule["running"], false, "{schedule}");
    assert!(
        schedule["text"].as_str().unwrap().starts_with("next pass (3) at "),
        "{schedule}"
    );
    {
        let db = rusqlite::Connection::open(m.path("state.db")).unwrap();
        db.busy_timeout(Duration::from_secs(30)).unwrap();
        db.execute(
            "UPDATE schedule SET pass = 3, pass_started_at = ?1, next_pass_at = NULL, updated_at = ?1",
            rusqlite::params![now],
        )
        .unwrap();
    }
    wait_for("the running pass", || {
        let s = serve.json("/api/summary")["schedule"].clone();
        s["text"].as_str()?.starts_with("pass 3 running since ").then_some(())
    });

    // A screenshot is a real picture.
    let shot = m.path("dashboard.png");
    let out = chromium_run(
        browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1000",
            "--virtual-time-budget=10000",
        ],
        &serve.url("/#user=user1@example.test"),
    );
    assert!(shot.is_file(), "no screenshot: {}", explain(&out));
    let data = std::fs::read(&shot).unwrap();
    let (width, height, pixels) = decode_png(&data);
    assert_eq!((width, height), (1280, 1000));
    let mut counts: std::collections::HashMap<[u8; 3], usize> = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(*p).or_default() += 1;
    }
    let background = counts.values().copied().max().unwrap_or(0);
    assert!(counts.len() > 50, "screenshot has only {} colours", counts.len());
    assert!(
        pixels.len() - background > pixels.len() / 20,
        "screenshot is nearly blank"
    );
    assert!(data.len() > 20_000, "screenshot is only {} bytes", data.len());
    if let Ok(keep) = std::env::var("CUTOVER_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }

    // It only read: it stops cleanly on SIGTERM.
    let out = serve.stop();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
}

/// A small state DB written through the library, as a run writes it.
fn small_state_db(dir: &Path) {
    let cp = cutover::checkpoint::Checkpoint::open(&dir.join("state.db")).unwrap();
    let sync = cp.begin_sync("a@x.test").unwrap();
    cp.finish_sync(sync, "a@x.test", "done", &Default::default(), None)
        .unwrap();
}

#[test]
fn off_loopback_a_token_guards_every_request() {
    let dir = tempfile::tempdir().unwrap();
    small_state_db(dir.path());
    // The DB alone, without a config.
    let config = ["--state", "state.db"];

    // Not on loopback and no token: refused, saying what to do.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["serve", "--state", "state.db", "--listen", "0.0.0.0:0"])
        .env_remove("CUTOVER_SERVE_TOKEN")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token") && err.contains("--token-file"),
        "{err}"
    );
    // A weak token is refused too.
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["serve", "--state", "state.db", "--listen", "0.0.0.0:0"])
        .env("CUTOVER_SERVE_TOKEN", "short")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too short"),
        "{}",
        explain(&out)
    );

    // With a token file.
    let token_file = dir.path().join("serve.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let serve = Serve::start(
        dir.path(),
        &[&config[..], &["--listen", "0.0.0.0:0", "--token-file", "serve.token"]].concat(),
        &[],
    );
    let port = serve.port;
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/", "/api/summary", "/api/users", "/app.js", "/api/items"] {
        let (status, head, _) = request(port, "GET", path, &[]);
        assert_eq!(status, 401, "GET {path} without the token");
        assert!(header(&head, "www-authenticate").is_some());
        let (status, _, _) = request(
            port,
            "GET",
            path,
            &[("Authorization", "Bearer wrong-token-wrong-token")],
        );
        assert_eq!(status, 401, "GET {path} with a wrong token");
        let (status, head, _) = request(port, "GET", path, &[("Authorization", &bearer)]);
        assert_eq!(status, 200, "GET {path} with the token");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        let csp = header(&head, "content-security-policy").unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
    }
    // Only on the page, not the API: ?token= once, then a cookie.
    let (status, _, _) = request(port, "GET", &format!("/api/summary?token={TOKEN}"), &[]);
    assert_eq!(status, 401);
    let (status, head, _) = request(port, "GET", &format!("/?token={TOKEN}"), &[]);
    assert_eq!(status, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/"));
    let cookie = header(&head, "set-cookie").expect("a session cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN), "the cookie holds the token itself");
    let session = cookie.split(';').next().unwrap();
    let (status, _, body) = request(port, "GET", "/api/users", &[("Cookie", session)]);
    assert_eq!(status, 200);
    let users: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(users["rows"][0]["email"], "a@x.test");
    let (status, _, _) = request(port, "GET", "/", &[("Cookie", "cutover_session=forged")]);
    assert_eq!(status, 401);
    // Read-only: anything but GET and HEAD is 405, token or not.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let (status, head, _) = request(port, method, "/api/summary", &[("Authorization", &bearer)]);
        assert_eq!(status, 405, "{method}");
        assert_eq!(header(&head, "allow"), Some("GET, HEAD"));
    }
    let (status, _, _) = request(port, "POST", "/", &[]);
    assert_eq!(status, 405);
    let (status, head, body) = request(port, "HEAD", "/api/summary", &[("Authorization", &bearer)]);
    assert_eq!(status, 200);
    assert!(body.is_empty() && header(&head, "content-length").is_some());
    let out = serve.stop();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains(TOKEN), "the token was printed: {printed}");
    assert!(printed.contains("token required"), "{printed}");

    // The token from the environment works the same.
    let serve = Serve::start(
        dir.path(),
        &[&config[..], &["--listen", "0.0.0.0:0"]].concat(),
        &[("CUTOVER_SERVE_TOKEN", TOKEN)],
    );
    assert_eq!(request(serve.port, "GET", "/api/summary", &[]).0, 401);
    assert_eq!(
        request(serve.port, "GET", "/api/summary", &[("Authorization", &bearer)]).0,
        200
    );
    drop(serve);

    // On loopback without a token: only a loopback Host is answered (a page
    // elsewhere cannot reach it through DNS rebinding).
    let serve = Serve::start(dir.path(), &[&config[..], &["--listen", "127.0.0.1:0"]].concat(), &[]);
    assert_eq!(request(serve.port, "GET", "/api/summary", &[]).0, 200);
    let mut s = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /api/summary HTTP/1.1\r\nHost: rebound.example:8080\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 421"), "{raw}");
    assert_eq!(request(serve.port, "GET", "/no-such-page", &[]).0, 404);

    // A client that never finishes its request is cut off.
    let mut slow = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    slow.set_read_timeout(Some(HANG_GUARD)).unwrap();
    slow.write_all(b"GET /api/summary HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut rest = Vec::new();
    assert!(
        slow.read_to_end(&mut rest).is_ok(),
        "hang guard: the dashboard kept a half-sent request's connection open"
    );
}

// --- Chromium --------------------------------------------------------------------

/// The page's DOM once its script fetched and rendered (virtual time lets
/// the fetches finish before the dump).
fn dump_dom(browser: &str, url: &str) -> String {
    let out = chromium_run(browser, &["--virtual-time-budget=10000", "--dump-dom"], url);
    assert!(out.status.success(), "chromium --dump-dom: {}", explain(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
