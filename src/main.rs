//! Entry point: parse arguments, build values, hand them to `run`, turn the
//! outcome into an exit code (0 done, 1 partial, 2 could not start, 130
//! interrupted; with `migrate --every`, the last pass's).

use std::process::ExitCode;

use clap::Parser;
use cutover::cli::{Cli, Command, InitSource, InitTarget, ReportFormat, Shell, UsersReport};
use cutover::event::Events;
use cutover::progress::{self, Mode};
use cutover::run::{self, Outcome, StopFlag};
use cutover::shard::Shard;
use cutover::{check, init, report, roster, settings, status, verify};
use std::io::IsTerminal;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(dispatch(cli))
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Migrate {
            config,
            users,
            json,
            dry_run,
            mirror_deletions,
            force_deletions,
            shard,
            state,
            every,
        } => {
            let (mut settings, users) = match load_both(&config, &users, shard) {
                Ok(v) => v,
                Err(code) => return code,
            };
            if let Some(state) = state {
                settings.state_path = state;
            }
            if mirror_deletions {
                settings.run.mirror_deletions = true;
            }
            let mut migration = match cutover::build::migration(&settings, users.len()) {
                Ok(m) => m,
                Err(e) => return fail(&e),
            };
            migration.copy.deletions.force = force_deletions;
            let mode = if json {
                Mode::Json
            } else if cli.quiet {
                Mode::Quiet
            } else if std::io::stderr().is_terminal() {
                Mode::Bar
            } else {
                Mode::Plain
            };
            let (events, rx) = Events::channel();
            let display = progress::spawn(mode, rx);
            let stop = StopFlag::default();
            let signals = stop.clone();
            let looping = every.is_some();
            tokio::spawn(async move {
                wait_for_signal().await;
                if looping {
                    eprintln!(
                        "stopping: no further pass; a pass under way finishes what is in flight and saves the checkpoint (signal again to force)"
                    );
                } else {
                    eprintln!(
                        "stopping: finishing what is in flight and saving the checkpoint (signal again to force)"
                    );
                }
                signals.stop();
                wait_for_signal().await;
                std::process::exit(130);
            });
            // A stop ends the wait between `--every` passes at once; during a
            // pass it stops that pass as it stops any run.
            let outcome = match every {
                Some(every) => run::migrate_every(migration, users, events, stop, every).await,
                None => run::migrate(migration, users, events, stop, dry_run).await,
            };
            let _ = display.await;
            match outcome {
                Ok(Outcome::Done) => ExitCode::SUCCESS,
                Ok(Outcome::Partial) => ExitCode::from(1),
                Ok(Outcome::Interrupted) => ExitCode::from(130),
                Err(e) => fail(&e),
            }
        }
        Command::Bench {
            config,
            users,
            connections,
            seconds,
            json,
            shard,
        } => {
            let (settings, users) = match load_both(&config, &users, shard) {
                Ok(v) => v,
                Err(code) => return code,
            };
            if connections.is_empty() || connections.contains(&0) {
                return fail(&"--connections takes positive counts, e.g. 1,2,4,8");
            }
            let source = match cutover::build::source(&settings) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            match cutover::bench::bench(&source, &users, &connections, seconds.max(1)).await {
                Ok(report) => match print_result(json, &report, || cutover::bench::render_table(&report)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(code) => code,
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Status {
            config,
            json,
            shard,
            state,
        } => {
            let state_path = match settings::load_state_path(&config) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let paths = match (state.is_empty(), shard) {
                (false, _) => state,
                (true, Some(shard)) => vec![shard.state_path(&state_path)],
                (true, None) => vec![state_path],
            };
            match status::collect_many(&paths) {
                Ok(report) => match print_result(json, &report, || status::render_table(&report)) {
                    Ok(()) if report.warnings.is_empty() => ExitCode::SUCCESS,
                    Ok(()) => {
                        for w in &report.warnings {
                            eprintln!("warning: {w}");
                        }
                        ExitCode::from(1)
                    }
                    Err(code) => code,
                },
                Err(e) => fail(&e),
            }
        }
        Command::Check(args) => users_report(args, check::check, check::render_table, check::CheckReport::ready).await,
        Command::Verify(args) => {
            let depth = if args.quick {
                verify::Depth::Quick
            } else {
                verify::Depth::Content
            };
            users_report(
                args.common,
                |settings, users| verify::verify(settings, users, depth),
                verify::render_table,
                verify::VerifyReport::complete,
            )
            .await
        }
        Command::Report { config, format, output } => {
            let format = match format {
                Some(ReportFormat::Csv) => report::Format::Csv,
                Some(ReportFormat::Json) => report::Format::Json,
                Some(ReportFormat::Html) => report::Format::Html,
                None => match report::Format::from_extension(&output) {
                    Some(f) => f,
                    None => {
                        return fail(&format!(
                            "cannot tell the report format from {}; add --format csv, json or html",
                            output.display()
                        ));
                    }
                },
            };
            let state_path = match settings::load_state_path(&config) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let collected = match report::collect(&state_path) {
                Ok(r) => r,
                Err(e) => return fail(&e),
            };
            match report::write(&collected, format, &output) {
                Ok(files) => {
                    for f in files {
                        eprintln!("wrote {}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Init {
            source,
            target,
            dir,
            force,
        } => {
            let source = match source {
                InitSource::Gmail => init::Source::Gmail,
                InitSource::ExchangeImap => init::Source::ExchangeImap,
                InitSource::Imap => init::Source::Imap,
                InitSource::Takeout => init::Source::Takeout,
            };
            let target = match target {
                InitTarget::Graph => init::Target::Graph,
                InitTarget::Imap => init::Target::Imap,
                InitTarget::Maildir => init::Target::Maildir,
            };
            match init::write(&dir, source, target, force) {
                Ok(written) => {
                    print!("{}", init::next_steps(&written, source, target));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Serve {
            config,
            listen,
            state,
            token_file,
        } => {
            let state_path = match (state, config) {
                (Some(s), _) => s,
                (None, Some(config)) => match settings::load_state_path(&config) {
                    Ok(s) => s,
                    Err(e) => return fail(&e),
                },
                (None, None) => return fail(&"give --config (for its [state] path) or --state"),
            };
            let options = cutover::serve::Options {
                state_path,
                listen,
                token_file,
            };
            match cutover::serve::serve(options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(
                shell,
                &mut cutover::cli::for_completions(),
                "cutover",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Manpage { dir } => match cutover::manpage::write_all(&dir) {
            Ok(pages) => {
                for page in pages {
                    eprintln!("wrote {}", page.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot write the man pages into {}: {e}", dir.display())),
        },
    }
}

/// Config and users file (only the shard's users, with the shard's own
/// state DB, when `--shard` was given), or the exit code for why not.
fn load_both(
    config: &std::path::Path,
    users_file: &std::path::Path,
    shard: Option<Shard>,
) -> Result<(settings::Settings, Vec<roster::UserJob>), ExitCode> {
    let mut settings = settings::load(config).map_err(|e| fail(&e))?;
    let mut users = roster::read_users_file(users_file).map_err(|e| fail(&e))?;
    if let Some(shard) = shard {
        let all = users.len();
        users = shard.select(users, |u| u.email.as_str());
        settings.state_path = shard.state_path(&settings.state_path);
        settings.shard = Some(shard);
        tracing::info!(shard = %shard, users = users.len(), of = all, state = %settings.state_path.display(), "shard");
        if users.is_empty() {
            eprintln!(
                "shard {shard}: none of the {all} users of {} belong to this shard; nothing to do",
                users_file.display()
            );
        }
    }
    Ok((settings, users))
}

/// `check` and `verify`: loads the config and the users file, looks at
/// every user with `run`, prints the report; the exit code is 0 when it
/// `passed`, 1 when not, 2 when the command could not start.
async fn users_report<R: serde::Serialize, E: std::fmt::Display, F: Future<Output = Result<R, E>>>(
    args: UsersReport,
    run: impl FnOnce(settings::Settings, Vec<roster::UserJob>) -> F,
    table: impl FnOnce(&R) -> String,
    passed: impl FnOnce(&R) -> bool,
) -> ExitCode {
    let (settings, users) = match load_both(&args.config, &args.users, args.shard) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match run(settings, users).await {
        Ok(report) => print_verdict(args.json, &report, || table(&report), passed(&report)),
        Err(e) => fail(&e),
    }
}

/// Prints a result as pretty JSON or as its table.
fn print_result(json: bool, value: &impl serde::Serialize, table: impl FnOnce() -> String) -> Result<(), ExitCode> {
    if json {
        let s = serde_json::to_string_pretty(value).map_err(|e| fail(&e))?;
        println!("{s}");
    } else {
        print!("{}", table());
    }
    Ok(())
}

/// Prints a result like [`print_result`]; the exit code is 0 when it
/// `passed`, 1 when not.
fn print_verdict(json: bool, value: &impl serde::Serialize, table: impl FnOnce() -> String, passed: bool) -> ExitCode {
    match print_result(json, value, table) {
        Ok(()) if passed => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
        Err(code) => code,
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Logs go to stderr (and optionally a file). The `log` crate bridge is
/// deliberately not installed: dependencies that trace raw protocol lines
/// (LOGIN included) at their own trace level must never reach the output.
fn init_logging(cli: &Cli) -> Result<(), String> {
    use tracing_subscriber::prelude::*;
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,reqwest=warn,rustls=warn"));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(progress::LogWriter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let file_layer = match &cli.log_file {
        Some(path) => {
            // Logs name mailboxes and folders: private to their owner, even
            // when the file was there before.
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)).map(|()| f))
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false),
            )
        }
        None => None,
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(file_layer);
    tracing::subscriber::set_global_default(subscriber).map_err(|e| e.to_string())
}
