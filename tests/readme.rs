//! Every command in README.md, copy-pasted, works: each ```sh block is run,
//! in order, by bash (`set -eo pipefail`, so every command of a block must
//! succeed, not only its last) against a lab of real Dovecot servers, in a
//! directory holding `cutover.toml` and `users.csv` for that lab, the way
//! an admin runs them from the directory holding theirs.
//!
//! A block is left out only with a marker and a reason on the line right
//! before it:
//!
//! ```text
//! <!-- readme-test: skip (needs a real Exchange tenant) -->
//! ```
//!
//! and never a block running `cutover init|check|migrate|status|serve|verify|report`
//! (the migration day must run). Other markers:
//!
//! - `<!-- readme-test: exit 1 -->`: the exit code the README states.
//! - `<!-- readme-test: stop when output says "next pass at", SIGTERM, exit 0 -->`
//!   and `<!-- readme-test: stop when http://127.0.0.1:8080/ answers, SIGINT, exit 0 -->`:
//!   a command that runs until stopped (`migrate --every`, `serve`) is run
//!   as written, and once its output says that (or the URL answers HTTP 200)
//!   it gets the signal the README tells the admin to send, and must exit
//!   with that code.
//!
//! So that a block cannot pass without running what it shows:
//! - `cutover` on the blocks' PATH is a wrapper that records each call and
//!   execs the binary under test; a block must call it at least once per
//!   line starting with `cutover`;
//! - every fenced block's language must be known: `sh` blocks are run, and
//!   `bash`, `shell` and `console` are refused, so a block cannot escape by
//!   its tag; `text`, `toml`, `csv`, ... are never run;
//! - users keep working: after the first `cutover migrate` block, new mail
//!   arrives in each source mailbox and one message is deleted there. At the
//!   end the target must hold exactly the source's messages (bytes, flags,
//!   dates), once each, and every user must be done: the README's resync
//!   copied the new mail and its final pass mirrored the deletion.
//!
//! The blocks run with HOME set to a scratch directory (so `~/...` stays in
//! the lab) and stdin closed. The run ends with a list of the blocks left
//! out and why.

mod common;
mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use support::mailgen;

/// Languages a fenced block may have. Only `sh` runs.
const KNOWN_LANGUAGES: &[&str] = &[
    "sh",
    "text",
    "toml",
    "csv",
    "yaml",
    "ini",
    "json",
    "dockerfile",
    "cron",
    "",
];
/// Shell tags that would be run by a reader but not by this test.
const REFUSED_LANGUAGES: &[&str] = &["bash", "shell", "console", "zsh", "shell-session"];
/// Subcommands of the migration day: a block running one is never skipped.
const MUST_RUN: &[&str] = &["init", "check", "migrate", "status", "serve", "verify", "report"];
/// How long any block may take.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
enum Until {
    Output(String),
    /// The URL answers with this HTTP status.
    Http(String, u16),
}

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Run { exit: i32 },
    Skip(String),
    Stop { until: Until, signal: String, exit: i32 },
}

#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
    plan: Plan,
}

fn parse_marker(marker: &str, line: usize) -> Result<Plan, String> {
    let m = marker.trim();
    let bad = |why: &str| format!("README.md:{line}: readme-test marker {m:?}: {why}");
    if let Some(rest) = m.strip_prefix("skip") {
        let reason = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| bad("write it as skip (REASON)"))?
            .trim();
        if reason.len() < 10 {
            return Err(bad("a skip needs its reason"));
        }
        return Ok(Plan::Skip(reason.to_owned()));
    }
    if let Some(code) = m.strip_prefix("exit ") {
        let exit = code.trim().parse().map_err(|_| bad("exit N"))?;
        return Ok(Plan::Run { exit });
    }
    let Some(rest) = m.strip_prefix("stop when ") else {
        return Err(bad("unknown marker (skip (REASON), exit N, stop when ...)"));
    };
    let parts: Vec<&str> = rest.rsplitn(3, ',').collect();
    if parts.len() != 3 {
        return Err(bad("stop when CONDITION, SIGNAL, exit N"));
    }
    let (cond, signal, exit) = (parts[2].trim(), parts[1].trim(), parts[0].trim());
    let until = if let Some(text) = cond.strip_prefix("output says ") {
        let text = text
            .trim()
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .ok_or_else(|| bad("quote the output text"))?;
        Until::Output(text.to_owned())
    } else if let Some((url, code)) = cond.split_once(" answers") {
        let code = match code.trim() {
            "" => 200,
            c => c.parse().map_err(|_| bad("answers, or answers CODE"))?,
        };
        if !url.starts_with("http://") {
            return Err(bad("an http:// URL"));
        }
        Until::Http(url.trim().to_owned(), code)
    } else {
        return Err(bad(
            "stop when output says \"TEXT\" or stop when http://... answers [CODE]",
        ));
    };
    let signal = match signal {
        "SIGTERM" => "TERM",
        "SIGINT" => "INT",
        _ => {
            return Err(bad(
                "SIGTERM or SIGINT (what the admin sends: Ctrl-C, kill, systemctl stop)",
            ));
        }
    };
    let exit = exit
        .strip_prefix("exit ")
        .and_then(|c| c.trim().parse().ok())
        .ok_or_else(|| bad("exit N"))?;
    Ok(Plan::Stop {
        until,
        signal: signal.to_owned(),
        exit,
    })
}

/// Every ```sh block of the README with its plan, in order.
fn blocks(readme: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - trimmed.len();
        let lang = info.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if REFUSED_LANGUAGES.contains(&lang.as_str()) {
            return Err(format!(
                "README.md:{}: a ```{lang} block would not be run by this test: tag shell commands ```sh",
                i + 1
            ));
        }
        if !KNOWN_LANGUAGES.contains(&lang.as_str()) {
            return Err(format!(
                "README.md:{}: unknown block language {lang:?}: add it to KNOWN_LANGUAGES if it is not shell",
                i + 1
            ));
        }
        let open = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            // Blocks inside list items are indented; so is their text.
            let l = lines[i];
            body.push(if l.len() >= indent && l[..indent].trim().is_empty() {
                &l[indent..]
            } else {
                l.trim_start()
            });
            i += 1;
        }
        if i >= lines.len() {
            return Err(format!("README.md:{}: unclosed block", open + 1));
        }
        i += 1;
        // The marker: the last non-blank line before the fence.
        let marker = lines[..open]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!-- readme-test:"))
            .map(|m| {
                m.strip_suffix("-->")
                    .map(str::to_owned)
                    .ok_or_else(|| format!("README.md:{open}: a marker fits on one line"))
            })
            .transpose()?;
        if lang != "sh" {
            if marker.is_some() {
                return Err(format!(
                    "README.md:{}: a readme-test marker before a ```{lang} block, which never runs",
                    open + 1
                ));
            }
            continue;
        }
        let plan = match marker {
            Some(m) => parse_marker(&m, open)?,
            None => Plan::Run { exit: 0 },
        };
        out.push(Block {
            line: open + 1,
            text: body.join("\n") + "\n",
            plan,
        });
    }
    Ok(out)
}

/// Lines of a block that start a `cutover` command.
fn cutover_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("cutover ") || *l == "cutover")
        .collect()
}

fn subcommand(line: &str) -> Option<&str> {
    line.split_whitespace().nth(1)
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Whether `url` answers with HTTP status `code`.
fn http_answers(url: &str, code: u16) -> bool {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let Ok(mut s) = TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let n = s.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).starts_with(&format!("HTTP/1.1 {code} "))
}

struct Ran {
    status: ExitStatus,
    output: String,
    took: Duration,
}

/// Runs one block in its own process group; `until` stops it with a signal.
fn run_block(block: &Block, dir: &Path, env: &[(String, String)], until: Option<(&Until, &str)>) -> Ran {
    let out_path = dir.join(".readme-block.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let script = format!("set -eo pipefail\n{}", block.text);
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child: Child = cmd.spawn().expect("run bash");
    let pgid = child.id();
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BLOCK_TIMEOUT {
            signal_group(pgid, "KILL");
            let _ = child.wait();
            panic!(
                "README.md:{}: still running after {BLOCK_TIMEOUT:?}:\n{}\noutput:\n{}",
                block.line,
                block.text,
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        if let (Some((until, signal)), false) = (until, signalled) {
            let reached = match until {
                Until::Output(text) => std::fs::read_to_string(&out_path)
                    .unwrap_or_default()
                    .contains(text.as_str()),
                Until::Http(url, code) => http_answers(url, *code),
            };
            if reached {
                eprintln!(
                    "readme: README.md:{}: {until:?} reached; sending SIG{signal}",
                    block.line
                );
                signal_group(pgid, signal);
                signalled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Nothing a block started outlives it.
    signal_group(pgid, "KILL");
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    if until.is_some() {
        assert!(
            signalled,
            "README.md:{}: ended (exit {:?}) before {until:?} was reached:\n{output}",
            block.line,
            status.code()
        );
    }
    Ran {
        status,
        output,
        took: started.elapsed(),
    }
}

#[test]
fn every_readme_command_runs_against_a_lab() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = blocks(&readme).unwrap_or_else(|e| panic!("{e}"));
    assert!(blocks.len() >= 10, "only {} ```sh blocks in README.md", blocks.len());
    for b in &blocks {
        if let Plan::Skip(reason) = &b.plan {
            for l in cutover_lines(&b.text) {
                assert!(
                    !subcommand(l).is_some_and(|s| MUST_RUN.contains(&s)),
                    "README.md:{}: skipped ({reason}), but `{l}` is part of the migration day and must run",
                    b.line
                );
            }
        }
    }

    // The dashboard blocks listen where the README says: say so plainly
    // rather than fail on "address in use" halfway.
    for b in &blocks {
        if let Plan::Stop {
            until: Until::Http(url, _),
            ..
        } = &b.plan
        {
            let port = url
                .trim_start_matches("http://")
                .split(['/', ':'])
                .nth(1)
                .unwrap_or("80");
            assert!(
                std::net::TcpListener::bind(format!("127.0.0.1:{port}")).is_ok(),
                "README.md:{}: port {port} is in use on this machine; the README's dashboard listens there",
                b.line
            );
        }
    }

    // The lab: two users with mail in nested and non-ASCII folders, a
    // source and a target Dovecot on loopback, the config an admin would
    // have written (target reached with a master login).
    let lab = Lab::new(2);
    let users: Vec<(String, String)> = (1..=2).map(user).collect();
    for (n, (email, _)) in users.iter().enumerate() {
        let msgs = mailgen::generate(700 + n as u64, 60, 3000);
        lab.source.deliver(email, "INBOX", &msgs[..30]);
        lab.source.deliver(email, "Sent", &msgs[30..40]);
        lab.source.deliver(email, "Archive/2023", &msgs[40..50]);
        lab.source.deliver(email, "Projets/Écoles", &msgs[50..]);
    }
    let dir = lab.dir.path().to_path_buf();
    std::fs::write(
        dir.join("cutover.toml"),
        format!(
            "# The lab's cutover.toml: what `cutover init` wrote, filled in.\n\
             [source]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\n\
             [target]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"plain\"\n\
             login = \"{{email}}*admin\"\npassword_env = \"CUTOVER_TARGET_PASSWORD\"\n\n\
             [state]\npath = \"cutover.db\"\n",
            lab.source.port(),
            lab.target.port()
        ),
    )
    .unwrap();
    lab.write_users(&users);
    let config = dir.join("cutover.toml");

    // `cutover` on PATH: a wrapper recording every call.
    let bin = dir.join(".readme-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.join(".readme-calls");
    let wrapper = bin.join("cutover");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            env!("CARGO_BIN_EXE_cutover")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join(".readme-home");
    std::fs::create_dir_all(&home).unwrap();
    let env = vec![
        (
            "PATH".to_owned(),
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
        ),
        ("HOME".to_owned(), home.display().to_string()),
        ("CUTOVER_TARGET_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
        // No colour codes or progress bars in the captured output.
        ("NO_COLOR".to_owned(), "1".to_owned()),
        ("TERM".to_owned(), "dumb".to_owned()),
    ];
    let read_calls = || std::fs::read_to_string(&calls).unwrap_or_default();

    let mut users_worked = false;
    let mut skipped = Vec::new();
    for block in &blocks {
        let (until, exit) = match &block.plan {
            Plan::Skip(reason) => {
                eprintln!("readme: README.md:{}: skipped ({reason})", block.line);
                skipped.push((
                    block.line,
                    block.text.lines().next().unwrap_or("").to_owned(),
                    reason.clone(),
                ));
                continue;
            }
            Plan::Run { exit } => (None, *exit),
            Plan::Stop { until, signal, exit } => (Some((until, signal.as_str())), *exit),
        };
        let before = read_calls().lines().count();
        let ran = run_block(block, &dir, &env, until);
        eprintln!(
            "readme: README.md:{}: exit {:?} in {:.1}s\n{}",
            block.line,
            ran.status.code(),
            ran.took.as_secs_f64(),
            block.text.trim_end()
        );
        assert_eq!(
            ran.status.code(),
            Some(exit),
            "README.md:{}: exit code {:?}, the README expects {exit}:\n{}\noutput:\n{}",
            block.line,
            ran.status,
            block.text,
            ran.output
        );
        let all_calls = read_calls();
        let new_calls: Vec<&str> = all_calls.lines().skip(before).collect();
        let expected = cutover_lines(&block.text);
        assert!(
            new_calls.len() >= expected.len(),
            "README.md:{}: {} `cutover` lines but {} calls of cutover:\n{}\noutput:\n{}",
            block.line,
            expected.len(),
            new_calls.len(),
            block.text,
            ran.output
        );
        // Users keep working after the first copy: new mail, one deletion.
        if !users_worked
            && new_calls
                .iter()
                .any(|c| c.starts_with("migrate ") && !c.contains("--dry-run"))
        {
            users_worked = true;
            for (n, (email, _)) in users.iter().enumerate() {
                lab.source
                    .deliver(email, "INBOX", &mailgen::generate(800 + n as u64, 3, 2000));
                let gone = lab
                    .source
                    .messages(email)
                    .into_iter()
                    .find(|m| m.folder == "Projets/Écoles")
                    .expect("a message to delete");
                lab.source.expunge(email, "Projets/Écoles", gone.uid);
            }
            eprintln!("readme: new mail arrived in every source mailbox, and one message was deleted there");
        }
    }
    assert!(users_worked, "no README block ran `cutover migrate`");

    // Where the README's migration day leaves the lab.
    for (email, _) in &users {
        assert_copied_exactly(&lab.source.messages(email), &lab.target.messages(email), &[]);
    }
    let status = status_json(&config);
    for (email, _) in &users {
        assert_eq!(user_status(&status, email)["state"], "done", "{status:#}");
    }

    eprintln!(
        "readme: {} ```sh blocks, {} run, {} skipped:",
        blocks.len(),
        blocks.len() - skipped.len(),
        skipped.len()
    );
    for (line, first, reason) in &skipped {
        eprintln!("  README.md:{line}: {first}  ({reason})");
    }
}

/// The marker grammar, without a lab.
#[test]
fn markers_are_read_strictly() {
    assert_eq!(parse_marker(" exit 1 ", 1), Ok(Plan::Run { exit: 1 }));
    assert_eq!(
        parse_marker("skip (needs a real Exchange tenant)", 1),
        Ok(Plan::Skip("needs a real Exchange tenant".into()))
    );
    assert_eq!(
        parse_marker("stop when output says \"next pass at\", SIGTERM, exit 0", 1),
        Ok(Plan::Stop {
            until: Until::Output("next pass at".into()),
            signal: "TERM".into(),
            exit: 0
        })
    );
    assert_eq!(
        parse_marker("stop when http://127.0.0.1:8080/ answers, SIGINT, exit 0", 1),
        Ok(Plan::Stop {
            until: Until::Http("http://127.0.0.1:8080/".into(), 200),
            signal: "INT".into(),
            exit: 0
        })
    );
    assert_eq!(
        parse_marker("stop when http://127.0.0.1:8080/ answers 401, SIGINT, exit 0", 1),
        Ok(Plan::Stop {
            until: Until::Http("http://127.0.0.1:8080/".into(), 401),
            signal: "INT".into(),
            exit: 0
        })
    );
    for bad in [
        "skip",
        "skip ()",
        "skip (x)",
        "exit",
        "stop when soon, SIGKILL, exit 0",
        "later",
    ] {
        assert!(parse_marker(bad, 1).is_err(), "{bad}");
    }
    let md = "<!-- readme-test: skip (needs root and apt) -->\n```sh\nsudo apt install x\n```\n\n```toml\na = 1\n```\n  ```sh\n  cutover status --config cutover.toml\n  ```\n";
    let b = blocks(md).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].plan, Plan::Skip("needs root and apt".into()));
    assert_eq!(b[1].text, "cutover status --config cutover.toml\n");
    assert_eq!(cutover_lines(&b[1].text).len(), 1);
    assert!(
        blocks("```bash\nls\n```\n").is_err(),
        "a shell block that would not run"
    );
    assert!(blocks("```sh\nls\n").is_err(), "unclosed");
    assert!(blocks("<!-- readme-test: exit 1 -->\n```toml\na = 1\n```\n").is_err());
}
