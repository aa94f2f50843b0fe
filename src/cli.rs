//! Command-line parsing only: turns arguments into a [`Command`]; `main`
//! builds the values and hands them to `run`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

use crate::shard::Shard;

#[derive(Parser, Debug)]
#[command(
    name = "cutover",
    version = VERSION,
    about = "Move mailboxes from IMAP servers into Exchange Online or any IMAP target, then resync until cutover.",
    long_about = "cutover copies every mailbox listed in a users CSV from an IMAP source to a target \
(IMAP or Maildir), newest mail first, each message exactly once, with its flags, date and folder. \
Rerun `cutover migrate` as often as you like: each run copies only what arrived since the last one.",
    after_help = "Examples, a migration day by day:\n  \
cutover check   --config cutover.toml --users users.csv    # before: logins, sizes, estimate\n  \
cutover migrate --config cutover.toml --users users.csv    # first copy, then rerun to resync\n  \
cutover status  --config cutover.toml\n  \
cutover verify  --config cutover.toml --users users.csv    # after the final resync\n  \
cutover report  --config cutover.toml --output report.html"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output (-v info, -vv debug, -vvv trace). Secrets are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Also write log lines to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy everything not yet copied; rerun for an incremental resync.
    #[command(
        after_help = "Exit codes: 0 every user done, 1 some users failed or were partly copied, \
2 the run could not start (bad config, bad users file, state DB unusable), 130 interrupted.\n\n\
With --every: passes run until SIGTERM or SIGINT. Stopped while waiting for the next pass, \
it exits at once with the last pass's code (0 or 1); stopped during a pass, that pass ends as \
any stopped run does (what is in flight is finished and recorded) and it exits with 130.\n\n\
Examples:\n  cutover migrate --config cutover.toml --users users.csv\n  \
cutover migrate --config cutover.toml --users users.csv --dry-run\n  \
cutover migrate --config cutover.toml --users users.csv --json > events.jsonl\n  \
cutover migrate --config cutover.toml --users users.csv --every 30m"
    )]
    Migrate {
        /// The configuration file (see config.example.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Users CSV: EmailAddress,UserName,Password[,UserRoot][,TargetUserName,TargetPassword].
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// One JSON event per line on stdout instead of a progress display.
        #[arg(long)]
        json: bool,
        /// Scan and plan only: print per user what would be copied and
        /// skipped (and why); nothing is written to the target.
        #[arg(long)]
        dry_run: bool,
        /// Delete from the target the copies of messages deleted on the
        /// source (for the final pass; kept and counted otherwise), at most
        /// [run] max_delete_percent of a mailbox's copies per run.
        #[arg(long)]
        mirror_deletions: bool,
        /// With --mirror-deletions: delete even more than
        /// max_delete_percent of a mailbox's copies.
        #[arg(long, requires = "mirror_deletions")]
        force_deletions: bool,
        /// Only the users of shard K of N (K from 0 to N-1), split by a stable
        /// hash of EmailAddress; the shard keeps its own state DB
        /// (cutover.db becomes cutover.shard-K-of-N.db).
        #[arg(long, value_name = "K/N")]
        shard: Option<Shard>,
        /// Use this state DB instead of the config's [state] path (or the
        /// shard's DB next to it).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Resync in a loop until stopped (SIGTERM, SIGINT): the next pass
        /// starts DURATION after the previous one started (at once if it
        /// took longer), e.g. 30m, 2h, 1h30m, 90s. `cutover status` shows
        /// the next pass.
        #[arg(long, value_name = "DURATION", value_parser = parse_every, conflicts_with = "dry_run")]
        every: Option<Duration>,
    },
    /// Write a commented cutover.toml and a users.csv template for one
    /// source and target kind.
    #[command(
        after_help = "Only the keys that matter for the chosen pair are written, each with a \
one-line comment; config.example.toml documents every key. Existing files are kept unless --force.\n\n\
Examples:\n  cutover init --source gmail --target graph\n  \
cutover init --source imap --target imap --dir /etc/cutover\n  \
cutover init --source takeout --target maildir --force"
    )]
    Init {
        /// Where mail comes from.
        #[arg(long, value_enum)]
        source: InitSource,
        /// Where mail goes.
        #[arg(long, value_enum)]
        target: InitTarget,
        /// The directory to write cutover.toml and users.csv into.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Replace cutover.toml and users.csv if they exist.
        #[arg(long)]
        force: bool,
    },
    /// Measure how fast the source can be read at several connection counts.
    #[command(
        after_help = "Reads only (EXAMINE, BODY.PEEK[]); writes nothing. Prints a table (or JSON) with \
messages/s, MB/s, p50/p99 fetch latency, errors and throttles per connection count, and names the knee.\n\n\
Examples:\n  cutover bench --config cutover.toml --users users.csv\n  \
cutover bench --config cutover.toml --users users.csv --connections 1,2,4,8,16 --seconds 20 --json"
    )]
    Bench {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Users to read from (all of their mail is the benchmark's data).
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// Connection counts to try, in order.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
        connections: Vec<usize>,
        /// Time budget per connection count.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Only the users of shard K of N (K from 0 to N-1), split by a stable
        /// hash of EmailAddress; the shard keeps its own state DB
        /// (cutover.db becomes cutover.shard-K-of-N.db).
        #[arg(long, value_name = "K/N")]
        shard: Option<Shard>,
    },
    /// Show per-user state from the checkpoint (or several shards' checkpoints, merged).
    #[command(after_help = "Examples:\n  cutover status --config cutover.toml --json\n  \
cutover status --config cutover.toml --shard 2/8\n  \
cutover status --config cutover.toml --state cutover.shard-0-of-2.db --state cutover.shard-1-of-2.db")]
    Status {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One JSON document: {users: [{email, state, source_messages, copied, skipped, failed, bytes_copied, throttled, last_sync, last_sync_counts, syncs, ...}], totals, passes, state_dbs}.
        #[arg(long)]
        json: bool,
        /// The state DB of shard K of N (cutover.shard-K-of-N.db next to the [state] path).
        #[arg(long, value_name = "K/N", conflicts_with = "state")]
        shard: Option<Shard>,
        /// Read these state DBs instead of the config's, one view over all of
        /// them (repeat it, once per shard).
        #[arg(long, value_name = "FILE")]
        state: Vec<PathBuf>,
    },
    /// Before migrating: log in to source and target for every user, list
    /// folders with counts and sizes, flag what would fail or be skipped,
    /// and estimate the copy time. Writes nothing.
    #[command(
        after_help = "Flags per user: a refused source or target login, a target mailbox that \
does not exist or cannot be opened, messages over max_message_bytes, mailboxes over max_items. \
The estimate comes from a timed fetch of a few messages (at most 256 KiB of each).\n\n\
Exit codes: 0 every user is ready, 1 a migrate would fail for some user, 2 the check could not start.\n\n\
Examples:\n  cutover check --config cutover.toml --users users.csv\n  \
cutover check --config cutover.toml --users users.csv --json > check.json",
        mut_args(json_help(
            "One JSON document: {users: [{email, ready, problems, warnings, source: {folders, ...}, target, estimated_seconds}], totals}"
        ))
    )]
    Check(UsersReport),
    /// After the final resync: compare source and target folder by folder
    /// (counts, Message-IDs, sizes, flags, then every message's content) and
    /// list what the target lacks, holds altered or flagged otherwise.
    #[command(
        after_help = "Messages the migration rules leave out (too large, over the item cap, \
refused by the target, excluded folders) are out of scope and never reported missing. Messages in \
the target but not in the source are listed as extra and do not fail the check. Source and target \
are only read. A message found in the target is read on both sides and compared: bytes on IMAP \
and Maildir; on Graph the text of its body and each attachment's name, size and SHA-256. A copy \
that differs counts as missing. --quick compares the listings only (one request per 500 messages \
on Graph instead of two or more per message). Each copy's read and flagged state (and answered, \
on IMAP and Maildir) is compared with the source's: a difference is listed as FLAGS DIFFER.\n\n\
Messages the state DB records as copied that the target lacks or holds altered are recorded there \
as failed, so the next migrate copies them again; copies whose flags differ are marked there, so \
the next migrate writes the source's flags to them (not while a migrate is running).\n\n\
Exit codes: 0 nothing in scope is missing, duplicated or flagged otherwise, 1 something is (or a \
user could not be verified), 2 the verification could not start.\n\n\
Examples:\n  cutover verify --config cutover.toml --users users.csv\n  \
cutover verify --config cutover.toml --users users.csv --quick\n  \
cutover verify --config cutover.toml --users users.csv --json > verify.json",
        mut_args(json_help("One JSON document: {users: [{email, complete, folders, missing, extra, ...}], totals}"))
    )]
    Verify(VerifyArgs),
    /// Write a report of the migration from the checkpoint: per-user
    /// statistics, every sync, every skipped, failed or converted message.
    #[command(
        after_help = "Formats: csv writes three files for spreadsheets: --output report.csv holds \
one row per user, report.syncs.csv next to it one row per sync, report.items.csv one row per skipped, \
failed or converted (copied in another form) message (UTF-8 with BOM, times in UTC); json writes one document; html writes one self-contained page with a sortable user table \
and charts (it loads nothing from the network). Files are created readable by their owner only \
(0600) and never contain passwords.\n\n\
Examples:\n  cutover report --config cutover.toml --output report.html\n  \
cutover report --config cutover.toml --format csv --output report.csv\n  \
cutover report --config cutover.toml --format json --output /srv/reports/cutover.json"
    )]
    Report {
        /// The configuration file; the report reads its [state] path.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Output format; by default taken from the output file's extension.
        #[arg(long, value_enum)]
        format: Option<ReportFormat>,
        /// Where to write the report (replaced if it exists).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// A read-only web dashboard over the state DB, live while `cutover
    /// migrate` runs: progress per user, throughput, throttling, errors,
    /// every skipped or failed item, the next scheduled pass.
    #[command(
        after_help = "Reads the state DB only (opened read-only, no run lock): safe beside a \
running migrate. The page and its script are in the binary and load nothing from the network; it \
polls the server every few seconds. Answers GET and HEAD only.\n\n\
It listens on 127.0.0.1:8080 by default. Any other address needs a token (--token-file FILE, or \
the environment variable CUTOVER_SERVE_TOKEN; at least 16 characters), and then every request \
needs it (a token given on loopback is required too): open http://HOST:PORT/?token=TOKEN once in the browser (a session cookie replaces it), \
or send Authorization: Bearer TOKEN. Plain HTTP: off a trusted network, put it behind a TLS \
proxy or use an SSH tunnel to the loopback default.\n\n\
Examples:\n  cutover serve --config cutover.toml\n  \
cutover serve --config cutover.toml --listen 127.0.0.1:9000 --state cutover.shard-0-of-2.db\n  \
openssl rand -hex 32 > serve.token && chmod 600 serve.token\n  \
cutover serve --config cutover.toml --listen 0.0.0.0:8080 --token-file serve.token"
    )]
    Serve {
        /// The configuration file; the dashboard reads its [state] path.
        #[arg(long, value_name = "FILE", required_unless_present = "state")]
        config: Option<PathBuf>,
        /// The address and port to listen on (a non-loopback one needs a token).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Read this state DB instead of the config's [state] path (then
        /// --config may be left out).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// A file whose first line is the token every request must carry
        /// (else CUTOVER_SERVE_TOKEN, if set).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
cutover completions bash > /etc/bash_completion.d/cutover\n  \
cutover completions zsh > \"${fpath[1]}/_cutover\"\n  \
cutover completions fish > ~/.config/fish/completions/cutover.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages: cutover.1 and one page per command
    /// (cutover-migrate.1, ...). Hidden: for packagers (scripts/package-deb).
    #[command(hide = true)]
    Manpage {
        /// The folder to write them into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

/// What `cutover --version` prints after the name: the crate's version and
/// the git revision it was built from (`0.1.0 (git 1a2b3c4)`, `-dirty` when
/// tracked files had changes, `unknown` outside a git checkout), stamped by
/// the build script (build.rs at the crate root).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("CUTOVER_GIT_REVISION"), ")");

/// The command line as `cutover completions` offers it: the same, without
/// the hidden commands (`manpage`), which clap_complete would list.
pub fn for_completions() -> clap::Command {
    use clap::CommandFactory;
    let cli = Cli::command();
    let visible = clap::Command::new("cutover")
        .version(VERSION)
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    match cli.get_about() {
        Some(about) => visible.about(about.clone()),
        None => visible,
    }
}

/// The flags of `check` and `verify`, which read the config and the users
/// file, look at every user's mailboxes and report per user. Each command
/// words its own `--json` help, since their documents differ.
#[derive(Args, Debug)]
pub struct UsersReport {
    /// The configuration file (see config.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Users CSV, as for migrate.
    #[arg(long, value_name = "FILE")]
    pub users: PathBuf,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only the users of shard K of N (as for migrate).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

/// The flags of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: UsersReport,
    /// Compare the folder listings only (counts, Message-IDs, sizes), not
    /// every message's content: much faster, but a copy with the right
    /// size and Message-ID and a cut body passes.
    #[arg(long)]
    pub quick: bool,
}

/// Words the `--json` help of one command that shares [`UsersReport`]
/// (`mut_args`, unlike `mut_arg`, keeps the flags in their order).
fn json_help(help: &'static str) -> impl FnMut(Arg) -> Arg {
    move |arg| if arg.get_id() == "json" { arg.help(help) } else { arg }
}

/// `init --source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitSource {
    /// Gmail or Google Workspace over IMAP (imap.gmail.com).
    Gmail,
    /// Exchange Online or Microsoft 365 over IMAP (outlook.office365.com).
    ExchangeImap,
    /// Any other IMAP server.
    Imap,
    /// Google Takeout exports (one .mbox per user).
    Takeout,
}

/// `init --target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitTarget {
    /// Exchange Online over Microsoft Graph.
    Graph,
    /// An IMAP server.
    Imap,
    /// A Maildir++ tree per user on this machine.
    Maildir,
}

/// `--every`: a positive interval written with units, e.g. `30m`, `2h`,
/// `90s`, `1h30m` (`d`, `h`, `m`, `s`; each unit at most once, largest
/// first).
pub fn parse_every(text: &str) -> Result<Duration, String> {
    let hint = "write it with units, e.g. 30m, 2h, 90s or 1h30m";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("--every needs an interval; {hint}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_rank = usize::MAX;
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, unit) = match c.to_ascii_lowercase() {
            'd' => (3, 86_400),
            'h' => (2, 3_600),
            'm' => (1, 60),
            's' => (0, 1),
            _ => return Err(format!("--every {text:?}: {c:?} is not a unit (d, h, m, s); {hint}")),
        };
        if digits.is_empty() {
            return Err(format!("--every {text:?}: a number must come before {c:?}; {hint}"));
        }
        if rank >= last_rank {
            return Err(format!("--every {text:?}: units go largest first, each once; {hint}"));
        }
        last_rank = rank;
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("--every {text:?} is too long an interval"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|&v| v <= 366 * 86_400)
            .ok_or_else(|| format!("--every {text:?} is longer than a year; {hint}"))?;
        digits.clear();
    }
    if !digits.is_empty() && digits.bytes().all(|b| b == b'0') && total == 0 {
        return Err(format!(
            "--every {text:?} is no interval: it must be at least 1s; {hint}"
        ));
    }
    if !digits.is_empty() {
        return Err(format!(
            "--every {text:?}: {digits} has no unit (seconds? minutes?); {hint}"
        ));
    }
    if total == 0 {
        return Err(format!(
            "--every {text:?} is no interval: it must be at least 1s; {hint}"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Json,
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_takes_units_and_their_sums() {
        for (text, secs) in [
            ("30m", 1800),
            ("2h", 7200),
            ("90s", 90),
            ("1h30m", 5400),
            ("2s", 2),
            ("1d", 86_400),
            ("1H5M10S", 3910),
            (" 45m ", 2700),
        ] {
            assert_eq!(parse_every(text), Ok(Duration::from_secs(secs)), "{text}");
        }
    }

    #[test]
    fn every_refuses_zero_and_nonsense_naming_the_flag() {
        for text in [
            "0", "0s", "0h0m", "", "30", "m", "abc", "1x", "30m1h", "5m5m", "-5m", "1.5h", "400d",
        ] {
            let err = parse_every(text).expect_err(text);
            assert!(err.starts_with("--every"), "{text}: {err}");
            assert!(err.contains("e.g. 30m") || err.contains("too long"), "{text}: {err}");
        }
    }

    #[test]
    fn every_is_not_for_a_dry_run() {
        let parsed = Cli::try_parse_from([
            "cutover",
            "migrate",
            "--config",
            "c.toml",
            "--users",
            "u.csv",
            "--dry-run",
            "--every",
            "30m",
        ]);
        let err = parsed.expect_err("refused").to_string();
        assert!(err.contains("--every") && err.contains("--dry-run"), "{err}");
        let zero = Cli::try_parse_from([
            "cutover", "migrate", "--config", "c.toml", "--users", "u.csv", "--every", "0",
        ]);
        assert!(zero.expect_err("refused").to_string().contains("--every"));
    }
}
