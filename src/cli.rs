//! Command-line parsing only: turns arguments into a [`Command`]; `main`
//! builds the values and hands them to `run`.

use std::path::PathBuf;

use clap::{Arg, Args, Parser, Subcommand, ValueEnum};

use crate::shard::Shard;

#[derive(Parser, Debug)]
#[command(
    name = "cutover",
    version,
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
Examples:\n  cutover migrate --config cutover.toml --users users.csv\n  \
cutover migrate --config cutover.toml --users users.csv --dry-run\n  \
cutover migrate --config cutover.toml --users users.csv --json > events.jsonl"
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
