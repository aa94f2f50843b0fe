//! `cutover manpage`: the man pages, made from the clap definitions in
//! [`crate::cli`] (clap_mangen), so they say what `--help` says. One page
//! for `cutover` (cutover.1) and one per visible command (cutover-migrate.1,
//! ...); each names the others under SEE ALSO. scripts/package-deb ships
//! them gzipped in /usr/share/man/man1.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::{Cli, VERSION};

/// Writes every page into `dir` (created if missing), replacing pages of
/// the same name; returns their paths, `cutover.1` first.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut top = Cli::command().disable_help_subcommand(true);
    top.build();
    let mut pages = vec![top.clone()];
    collect(&top, &mut pages);
    let names: Vec<String> = pages.iter().map(page_name).collect();
    let mut written = Vec::with_capacity(pages.len());
    for (page, name) in pages.into_iter().zip(&names) {
        let path = dir.join(format!("{name}.1"));
        let others = names.iter().filter(|n| *n != name).map(String::as_str);
        std::fs::write(&path, render(page, others)?)?;
        written.push(path);
    }
    Ok(written)
}

/// The visible subcommands of `cmd`, depth first.
fn collect(cmd: &clap::Command, pages: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(sub.clone());
        collect(sub, pages);
    }
}

/// `cutover` or `cutover-migrate`: the page's name, as `man` is asked for it.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_owned()
}

/// One page: clap_mangen's sections, with the after-help text (exit codes,
/// examples) under NOTES rather than its EXTRA, then SEE ALSO.
fn render<'a>(cmd: clap::Command, see_also: impl Iterator<Item = &'a str>) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd)
        .date(date())
        .source(format!("cutover {VERSION}"))
        .manual("cutover manual");
    let mut out = Vec::new();
    man.render(&mut out)?;
    let text = String::from_utf8(out).map_err(io::Error::other)?;
    let mut text = text.replacen("\n.SH EXTRA\n", "\n.SH NOTES\n", 1);
    let mut refs = Vec::new();
    for (i, name) in see_also.enumerate() {
        if i > 0 {
            refs.push(roman(", "));
        }
        refs.push(bold(name.to_owned()));
        refs.push(roman("(1)"));
    }
    let mut roff = Roff::default();
    roff.control("SH", ["SEE ALSO"]).text(refs);
    text.push_str(&roff.to_roff());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text.into_bytes())
}

/// The page's date (YYYY-MM-DD): SOURCE_DATE_EPOCH's when set, for
/// reproducible packages (scripts/package-deb sets the commit's), else
/// today's. Never empty: an empty .TH field would shift the ones after it.
fn date() -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    let when = epoch
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(chrono::Utc::now);
    when.format("%Y-%m-%d").to_string()
}
