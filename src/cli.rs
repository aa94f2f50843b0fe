//! Command-line parsing only: turns arguments into a [`Command`]; `main`
//! builds the values and hands them to `run`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cutover",
    version,
    about = "Move mailboxes from IMAP servers into Exchange Online or any IMAP target, then resync until cutover.",
    long_about = "cutover copies every mailbox listed in a users CSV from an IMAP source to a target \
(IMAP or Maildir), newest mail first, each message exactly once, with its flags, date and folder. \
Rerun `cutover migrate` as often as you like: each run copies only what arrived since the last one.",
    after_help = "Examples:\n  cutover migrate --config cutover.toml --users users.csv\n  cutover status --config cutover.toml\n  cutover status --config cutover.toml --json"
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
    },
    /// Show per-user state from the checkpoint.
    #[command(after_help = "Example:\n  cutover status --config cutover.toml --json")]
    Status {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One JSON document: {users: [{email, state, source_messages, copied, skipped, failed, bytes_copied, last_sync, ...}]}.
        #[arg(long)]
        json: bool,
    },
}
