//! A lab for demos and benchmarks: a real source Dovecot (and a target Dovecot
//! or an empty Maildir target) filled with generated mail, plus the
//! `cutover.toml` and `users.csv` that point cutover at them.
//!
//! Why: demos and benchmarks need a realistic, reproducible migration
//! scenario on one machine without any external service. The servers are the
//! same isolated fixtures the integration tests use (`tests/support`).
//!
//! ```text
//! cargo build --release --example lab
//! target/release/examples/lab --dir DIR [--users N=1] [--messages N=2000]
//!     [--folders N=10] [--avg-size BYTES=20000] [--big] [--large N=0]
//!     [--target imap|maildir|graph=imap] [--separator /|.] [--seed N=1]
//!     [--emulator PATH] [--time-scale F=1] [--requests-per-10-minutes N=10000] [--write-mode auto|import-mime|json]
//!     [--compress] [--no-condstore-port]
//! ```
//!
//! - `--messages` is per user, spread over `--folders` folders (INBOX gets
//!   the largest share; the others are nested and non-ASCII names such as
//!   `Archive/2023`, `Projects/Écoles`, `日本語`). Every user also gets the
//!   odd-MIME corpus in `Odd MIME`, and with `--big` one 36 MiB + 1 KiB
//!   message in `Large Attachments` (`--large N`: N more of 35 MB there).
//! - Source users are `user1@example.test` .. `userN@example.test` with
//!   password `secret-1` .. `secret-N`; target users (imap) have the same
//!   logins and the password `target-secret`.
//! - `--separator` sets the source server's hierarchy separator; the target
//!   server always uses `/`.
//! - `--compress` makes both servers offer COMPRESS=DEFLATE (Dovecot's
//!   `imap_zlib` plugin), as Gmail does; cutover then uses it unless the
//!   config says `compress = false`.
//! - `--no-condstore-port` also starts a relay in front of the source that
//!   hides CONDSTORE and QRESYNC (`tests/support/relay.rs`), exported as
//!   `SOURCE_PORT_NO_CONDSTORE`: the same mailbox as a server without
//!   HIGHESTMODSEQ, where a resync reads every message's flags.
//! - `--target graph` starts the Graph emulator (`graph-emulator`, built
//!   with `cargo build --release -p graph-emulator`; found next to the lab
//!   executable or given with `--emulator`) with Exchange Online's real
//!   per-mailbox limits, its clock sped up by `--time-scale` (0.1 runs a
//!   10-minute window in 1 minute), and one mailbox per lab user. The config
//!   names the client secret by environment variable
//!   (`CUTOVER_LAB_GRAPH_SECRET`, exported in `lab.env`) and sets
//!   `limits_time_scale` to the same scale, so cutover paces itself to the
//!   emulator's clock.
//!
//! Contract for scripts (see `scripts/demo`):
//! - When everything is up it writes `DIR/cutover.toml`, `DIR/users.csv` and
//!   `DIR/lab.env` (shell-sourceable `export KEY='value'` lines: ports,
//!   Dovecot config paths for `doveadm -c`, `CUTOVER_LAB_TARGET_PASSWORD`,
//!   `CUTOVER_LAB_GRAPH_SECRET`, `GRAPH_URL`, `LAB_PID`), then prints a line
//!   `READY` on stdout. Progress goes to stderr.
//! - To stop it: send SIGTERM or SIGINT (run the built binary, not
//!   `cargo run`, so that the pid you signal is the lab's), or create the file
//!   `DIR/stop`. It stops the servers, deletes their temporary directories,
//!   removes `DIR/stop`, prints `STOPPED` and exits 0. A signal during the
//!   fill also stops it cleanly. Standard input is not read, so the lab can
//!   run in the background with stdin closed.
//! - Exit code 1 with a message on stderr when it cannot start (for example
//!   Dovecot missing: run `scripts/install-deps`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::io::BufRead as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use support::{Dovecot, DovecotOptions, GenMessage};

const TARGET_PASSWORD: &str = "target-secret";

/// The emulated Entra ID app registration of `--target graph`.
const GRAPH_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const GRAPH_CLIENT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const GRAPH_SECRET: &str = "lab-graph-secret";
const GRAPH_SECRET_ENV: &str = "CUTOVER_LAB_GRAPH_SECRET";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    Imap,
    Maildir,
    Graph,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WriteMode {
    Auto,
    ImportMime,
    Json,
}

impl WriteMode {
    fn as_str(self) -> &'static str {
        match self {
            WriteMode::Auto => "auto",
            WriteMode::ImportMime => "import-mime",
            WriteMode::Json => "json",
        }
    }
}

/// Starts source/target mail servers with generated mail for cutover demos.
#[derive(Debug, Clone, Parser)]
#[command(name = "lab", args_override_self = true)]
struct Args {
    /// Directory for cutover.toml, users.csv, lab.env (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Number of users.
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Messages per user (besides the odd corpus and the big message).
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Number of folders the messages are spread over (INBOX included).
    #[arg(long, default_value_t = 10)]
    folders: usize,
    /// Average generated message size in bytes.
    #[arg(long, default_value_t = 20_000)]
    avg_size: usize,
    /// Also deliver one 36 MiB + 1 KiB message per user.
    #[arg(long)]
    big: bool,
    /// Also deliver this many 35 MB messages per user (in `Large
    /// Attachments`): what `scripts/bench --large` copies to measure memory
    /// with several big messages in flight.
    #[arg(long, default_value_t = 0)]
    large: usize,
    /// Target kind.
    #[arg(long, value_enum, default_value_t = TargetKind::Imap)]
    target: TargetKind,
    /// Source server's IMAP hierarchy separator: '/' or '.'.
    #[arg(long, default_value_t = '/')]
    separator: char,
    /// Seed for the generated mail.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// graph: the graph-emulator executable (default: next to this one).
    #[arg(long)]
    emulator: Option<PathBuf>,
    /// graph: the emulator's clock speed-up (every Exchange window and
    /// Retry-After runs at this fraction of real time).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// graph: the request budget per mailbox and (scaled) 10-minute window,
    /// both in the emulator and in cutover's config (Exchange: 10,000). A
    /// small budget lets hundreds of mailboxes run at their full budget
    /// without the machine, rather than the pacing, being what binds.
    #[arg(long, default_value_t = 10_000)]
    requests_per_10_minutes: u64,
    /// graph: cutover's write_mode in the generated config.
    #[arg(long, value_enum, default_value_t = WriteMode::Auto)]
    write_mode: WriteMode,
    /// Both servers offer COMPRESS=DEFLATE.
    #[arg(long)]
    compress: bool,
    /// Also serve the source through a relay hiding CONDSTORE and QRESYNC
    /// (`SOURCE_PORT_NO_CONDSTORE` in lab.env).
    #[arg(long)]
    no_condstore_port: bool,
}

/// Folder names in fixture form ('/' hierarchy). The first N are used.
const FOLDERS: &[&str] = &[
    "INBOX",
    "Sent",
    "Archive/2023",
    "Projects/Écoles",
    "日本語",
    "Archive/2024",
    "Projects/Écoles/Réunions",
    "Clients/Müller & Söhne",
    "Newsletters",
    "Drafts",
    "Receipts/2022",
    "Family/Vacances été",
    "Русский",
    "Mr. Smith",
    "Archive/2022",
    "Projects/Q1 Planning",
    "Travel/✈ Flights",
    "Support/Tickets",
    "Trash",
    "Junk",
];

struct Lab {
    source: Dovecot,
    no_condstore: Option<support::relay::Relay>,
    target: Option<Dovecot>,
    graph: Option<Emulator>,
    stats: Vec<String>,
}

/// The running Graph emulator; stopped when dropped.
struct Emulator {
    child: Child,
    base_url: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--emulator`, or `graph-emulator` where cargo puts it: beside the lab
/// executable's directory (`target/release/examples/lab` →
/// `target/release/graph-emulator`) or in it.
fn emulator_path(args: &Args) -> Result<PathBuf, String> {
    if let Some(p) = &args.emulator {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(format!("--emulator {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the lab executable: {e}"))?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("graph-emulator"))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "graph-emulator not found (looked for {}); build it with `cargo build --release -p graph-emulator` or pass --emulator PATH",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        )
    })
}

/// Starts the emulator on a free loopback port with Exchange Online's real
/// limits (its defaults), the given clock scale and one mailbox per login.
fn start_emulator(path: &Path, args: &Args, logins: &[String]) -> Result<Emulator, String> {
    let mut child = Command::new(path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tenant-id",
            GRAPH_TENANT,
            "--client-id",
            GRAPH_CLIENT,
        ])
        .args(["--client-secret-env", GRAPH_SECRET_ENV])
        .arg("--time-scale")
        .arg(args.time_scale.to_string())
        .arg("--rate-limit-requests")
        .arg(args.requests_per_10_minutes.to_string())
        .arg("--mailboxes")
        .arg(logins.join(","))
        .env(GRAPH_SECRET_ENV, GRAPH_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let Some(base_url) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{} did not start (first line {:?}; its error is above)",
            path.display(),
            line.trim()
        ));
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok(Emulator { child, base_url })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.separator != '/' && args.separator != '.' {
        eprintln!("lab: --separator must be '/' or '.'");
        return ExitCode::FAILURE;
    }
    if !(args.time_scale.is_finite() && args.time_scale >= 0.0001 && args.time_scale <= 1.0) {
        eprintln!("lab: --time-scale must be between 0.0001 and 1");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    // Signals are hooked before anything starts, so no server is ever left
    // behind by a SIGTERM during the fill.
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    if let Err(e) = fs::create_dir_all(&args.dir) {
        eprintln!("lab: cannot create {}: {e}", args.dir.display());
        return ExitCode::FAILURE;
    }
    let dir = fs::canonicalize(&args.dir).expect("canonical dir");
    let stop_file = dir.join("stop");
    let _ = fs::remove_file(&stop_file);
    for f in ["cutover.toml", "users.csv", "lab.env"] {
        let _ = fs::remove_file(dir.join(f));
    }

    let cancel = Arc::new(AtomicBool::new(false));
    let setup = {
        let (args, dir, cancel) = (args.clone(), dir.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || setup(&args, &dir, &cancel))
    };
    tokio::pin!(setup);
    let result = loop {
        tokio::select! {
            r = &mut setup => break r,
            _ = term.recv() => cancel.store(true, Ordering::SeqCst),
            _ = int.recv() => cancel.store(true, Ordering::SeqCst),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if stop_file.exists() {
                    cancel.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    let lab = match result {
        Ok(Some(lab)) => lab,
        Ok(None) => {
            eprintln!("lab: stopped during setup");
            let _ = fs::remove_file(&stop_file);
            println!("STOPPED");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let msg = e
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| "setup failed".to_string());
            eprintln!("lab: {msg}");
            return ExitCode::FAILURE;
        }
    };

    if let Err(e) = write_files(&args, &dir, &lab) {
        eprintln!("lab: writing config files: {e}");
        return ExitCode::FAILURE;
    }
    for s in &lab.stats {
        eprintln!("lab: {s}");
    }
    eprintln!(
        "lab: config in {}; stop with SIGTERM or `touch {}`",
        dir.display(),
        stop_file.display()
    );
    println!("READY");
    let _ = std::io::stdout().flush();

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if stop_file.exists() {
                    break;
                }
            }
        }
    }
    eprintln!("lab: stopping servers");
    drop(lab);
    let _ = fs::remove_file(&stop_file);
    println!("STOPPED");
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

/// Starts the servers and fills the source. `None` when cancelled.
fn setup(args: &Args, dir: &Path, cancel: &AtomicBool) -> Option<Lab> {
    let t0 = Instant::now();
    let logins: Vec<String> = (1..=args.users).map(|i| format!("user{i}@example.test")).collect();
    let source = Dovecot::start(DovecotOptions {
        separator: args.separator,
        users: logins
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), format!("secret-{}", i + 1)))
            .collect(),
        compress: args.compress,
        ..Default::default()
    });
    eprintln!("lab: source Dovecot on 127.0.0.1:{}", source.port());
    let target = match args.target {
        TargetKind::Imap => {
            let t = Dovecot::start(DovecotOptions {
                users: logins
                    .iter()
                    .map(|l| (l.clone(), TARGET_PASSWORD.to_string()))
                    .collect(),
                compress: args.compress,
                ..Default::default()
            });
            eprintln!("lab: target Dovecot on 127.0.0.1:{}", t.port());
            Some(t)
        }
        TargetKind::Maildir => {
            fs::create_dir_all(dir.join("maildir")).expect("create maildir target dir");
            None
        }
        TargetKind::Graph => None,
    };
    let graph = (args.target == TargetKind::Graph).then(|| {
        let emulator = emulator_path(args)
            .and_then(|path| start_emulator(&path, args, &logins))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "lab: Graph emulator on {} (time scale {})",
            emulator.base_url, args.time_scale
        );
        emulator
    });

    let mut folders: Vec<String> = FOLDERS
        .iter()
        .take(args.folders.max(1))
        .map(|s| s.to_string())
        .collect();
    for n in folders.len()..args.folders {
        folders.push(format!("Misc/Folder {n:03}"));
    }
    let odd: Vec<GenMessage> = support::odd_corpus().into_iter().map(|(_, m)| m).collect();
    let (mut total_msgs, mut total_bytes) = (0usize, 0usize);

    for (u, login) in logins.iter().enumerate() {
        let mut rng = fastrand::Rng::with_seed(args.seed.wrapping_mul(1_000_003) + u as u64);
        let mut per_folder: Vec<Vec<GenMessage>> = vec![Vec::new(); folders.len()];
        // Generate in chunks to bound memory for very large labs.
        let mut left = args.messages;
        let mut chunk = 0u64;
        while left > 0 {
            if cancel.load(Ordering::SeqCst) {
                return None;
            }
            let n = left.min(5000);
            let seed = args.seed.wrapping_mul(7919).wrapping_add(u as u64 * 10_000 + chunk);
            for m in support::generate(seed, n, args.avg_size) {
                // INBOX gets ~40%, the other folders share the rest.
                let f = if folders.len() == 1 || rng.u8(0..100) < 40 {
                    0
                } else {
                    rng.usize(1..folders.len())
                };
                per_folder[f].push(m);
            }
            left -= n;
            chunk += 1;
            // Deliver when a chunk is complete so memory stays bounded.
            for (f, msgs) in per_folder.iter_mut().enumerate() {
                if !msgs.is_empty() {
                    total_msgs += msgs.len();
                    total_bytes += msgs.iter().map(|m| m.raw.len()).sum::<usize>();
                    source.deliver(login, &folders[f], msgs);
                    msgs.clear();
                }
            }
        }
        for f in &folders {
            source.create_folder(login, f);
        }
        source.deliver(login, "Odd MIME", &odd);
        total_msgs += odd.len();
        total_bytes += odd.iter().map(|m| m.raw.len()).sum::<usize>();
        if args.big {
            let big = support::big_message(36 * 1024 * 1024 + 1024, args.seed + u as u64);
            total_msgs += 1;
            total_bytes += big.raw.len();
            source.deliver(login, "Large Attachments", &[big]);
        }
        for i in 0..args.large {
            let large = support::big_message(35_000_000, (args.seed + u as u64) * 1000 + i as u64 + 1);
            total_msgs += 1;
            total_bytes += large.raw.len();
            source.deliver(login, "Large Attachments", &[large]);
        }
        eprintln!("lab: filled {login}");
    }
    let no_condstore = args.no_condstore_port.then(|| {
        let relay = support::relay::Relay::hiding_capabilities(source.port(), &["CONDSTORE", "QRESYNC"]);
        eprintln!("lab: source without CONDSTORE (relay) on 127.0.0.1:{}", relay.port());
        relay
    });
    let stats = vec![format!(
        "{} users, {total_msgs} messages, {:.1} MB in the source, set up in {:.1}s",
        logins.len(),
        total_bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    )];
    Some(Lab {
        source,
        no_condstore,
        target,
        graph,
        stats,
    })
}

fn write_files(args: &Args, dir: &Path, lab: &Lab) -> std::io::Result<()> {
    let q = |p: &Path| toml_string(&p.display().to_string());
    let mut toml = String::new();
    writeln!(toml, "# Written by cutover's lab (examples/lab.rs).").unwrap();
    writeln!(toml, "[source]").unwrap();
    writeln!(toml, "host = \"127.0.0.1\"").unwrap();
    writeln!(toml, "port = {}", lab.source.port()).unwrap();
    writeln!(toml, "security = \"plain\"").unwrap();
    writeln!(toml).unwrap();
    writeln!(toml, "[target]").unwrap();
    match (&lab.target, &lab.graph) {
        (_, Some(graph)) => {
            writeln!(toml, "kind = \"graph\"").unwrap();
            writeln!(toml, "tenant_id = \"{GRAPH_TENANT}\"").unwrap();
            writeln!(toml, "client_id = \"{GRAPH_CLIENT}\"").unwrap();
            writeln!(toml, "client_secret_env = \"{GRAPH_SECRET_ENV}\"").unwrap();
            writeln!(toml, "endpoint = {}", toml_string(&graph.base_url)).unwrap();
            writeln!(toml, "authority = {}", toml_string(&graph.base_url)).unwrap();
            writeln!(toml, "write_mode = \"{}\"", args.write_mode.as_str()).unwrap();
            writeln!(
                toml,
                "# The emulator runs Exchange's 10- and 5-minute windows this much faster."
            )
            .unwrap();
            writeln!(toml, "limits_time_scale = {}", args.time_scale).unwrap();
            writeln!(toml, "requests_per_10_minutes = {}", args.requests_per_10_minutes).unwrap();
        }
        (Some(target), None) => {
            writeln!(toml, "kind = \"imap\"").unwrap();
            writeln!(toml, "host = \"127.0.0.1\"").unwrap();
            writeln!(toml, "port = {}", target.port()).unwrap();
            writeln!(toml, "security = \"plain\"").unwrap();
            writeln!(toml, "login = \"{{email}}\"").unwrap();
            writeln!(toml, "password_env = \"CUTOVER_LAB_TARGET_PASSWORD\"").unwrap();
        }
        (None, None) => {
            writeln!(toml, "kind = \"maildir\"").unwrap();
            writeln!(toml, "path = {}", q(&dir.join("maildir"))).unwrap();
        }
    }
    writeln!(toml).unwrap();
    writeln!(toml, "[state]").unwrap();
    writeln!(toml, "path = {}", q(&dir.join("cutover.db"))).unwrap();
    write_atomic(&dir.join("cutover.toml"), &toml)?;

    let mut csv = String::from("EmailAddress,UserName,Password\n");
    for i in 1..=args.users {
        writeln!(csv, "user{i}@example.test,user{i}@example.test,secret-{i}").unwrap();
    }
    write_atomic(&dir.join("users.csv"), &csv)?;

    let sh = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut env = String::from("# Written by cutover's lab (examples/lab.rs); source it from a shell.\n");
    let mut var = |k: &str, v: String| writeln!(env, "export {k}={}", sh(&v)).unwrap();
    var("LAB_PID", std::process::id().to_string());
    var("LAB_DIR", dir.display().to_string());
    var("LAB_USERS", args.users.to_string());
    var("LAB_MESSAGES_PER_USER", args.messages.to_string());
    var("SOURCE_HOST", "127.0.0.1".into());
    var("SOURCE_PORT", lab.source.port().to_string());
    var("SOURCE_DOVECOT_CONF", lab.source.conf_path().display().to_string());
    if let Some(relay) = &lab.no_condstore {
        var("SOURCE_PORT_NO_CONDSTORE", relay.port().to_string());
    }
    match (&lab.target, &lab.graph) {
        (_, Some(graph)) => {
            var("TARGET_KIND", "graph".into());
            var("GRAPH_URL", graph.base_url.clone());
            var("GRAPH_TIME_SCALE", args.time_scale.to_string());
            var(GRAPH_SECRET_ENV, GRAPH_SECRET.into());
        }
        (Some(target), None) => {
            var("TARGET_KIND", "imap".into());
            var("TARGET_HOST", "127.0.0.1".into());
            var("TARGET_PORT", target.port().to_string());
            var("TARGET_DOVECOT_CONF", target.conf_path().display().to_string());
        }
        (None, None) => {
            var("TARGET_KIND", "maildir".into());
            var("TARGET_MAILDIR", dir.join("maildir").display().to_string());
        }
    }
    var("CUTOVER_LAB_TARGET_PASSWORD", TARGET_PASSWORD.into());
    write_atomic(&dir.join("lab.env"), &env)
}

/// Readers polling for a file never see it half-written.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp~");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
