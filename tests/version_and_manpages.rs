//! What packaging relies on: `cutover --version` names the git revision the
//! binary was built from (build.rs), and the hidden `cutover manpage` writes
//! one page per visible command (scripts/package-deb ships them).

use std::process::Command;

fn cutover(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .output()
        .expect("run cutover")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// HEAD's short revision as git gives it here, or None outside a checkout
/// of this crate (a packaged crate, no git).
fn git_head() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-c")
            .arg(format!("safe.directory={dir}"))
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    git(&["rev-parse", "--short", "HEAD"])
}

#[test]
fn version_names_the_git_revision() {
    let long = stdout(&cutover(&["--version"]));
    let short = stdout(&cutover(&["-V"]));
    assert_eq!(long, short);
    let line = long.trim_end();
    let version = env!("CARGO_PKG_VERSION");
    let revision = line
        .strip_prefix(&format!("cutover {version} (git "))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `cutover {version} (git REV)`: {line:?}"));
    match git_head() {
        Some(head) => {
            // `-dirty` depends on the tree when the binary was built, which
            // others may have changed since: only the revision must match.
            let built = revision.strip_suffix("-dirty").unwrap_or(revision);
            assert_eq!(built, head, "{line:?} is not HEAD ({head})");
        }
        None => assert_eq!(revision, "unknown", "{line:?} outside a git checkout"),
    }
}

#[test]
fn manpage_writes_a_page_per_visible_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = cutover(&["manpage", "--dir", out_dir.to_str().unwrap()]);
    stdout(&out);
    let mut pages: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for name in [
        "cutover.1",
        "cutover-migrate.1",
        "cutover-status.1",
        "cutover-completions.1",
    ] {
        assert!(pages.iter().any(|p| p == name), "no {name} in {pages:?}");
    }
    assert!(
        !pages.iter().any(|p| p.contains("manpage")),
        "the hidden command has a page: {pages:?}"
    );

    let top = std::fs::read_to_string(out_dir.join("cutover.1")).unwrap();
    let version = stdout(&cutover(&["--version"]));
    let version = version.trim_end().strip_prefix("cutover ").unwrap();
    let title = top.lines().find(|l| l.starts_with(".TH ")).expect(".TH line");
    // Name, section, a date, the source with the version, the manual.
    assert!(title.starts_with(".TH cutover 1 2"), "{title}");
    assert!(title.contains(&format!("\"cutover {version}\"")), "{title}");
    assert!(!title.contains("  "), "an empty .TH field shifts the others: {title}");
    assert!(top.contains("\n.SH SUBCOMMANDS\n"), "{top}");
    assert!(top.contains("cutover\\-migrate(1)"), "{top}");

    let migrate = std::fs::read_to_string(out_dir.join("cutover-migrate.1")).unwrap();
    assert!(migrate.contains("\\-\\-config"), "{migrate}");
    assert!(
        migrate.contains("\n.SH NOTES\n") && migrate.contains("Exit codes"),
        "{migrate}"
    );
    assert!(
        migrate.contains("\n.SH \"SEE ALSO\"\n") && migrate.contains("\\fBcutover\\fR(1)"),
        "{migrate}"
    );
    assert!(migrate.ends_with('\n'));
}

#[test]
fn completions_leave_out_the_hidden_command() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&cutover(&["completions", shell]));
        for sub in [
            "migrate",
            "status",
            "check",
            "verify",
            "report",
            "completions",
            "log-file",
            "version",
        ] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(
            !script.contains("manpage"),
            "{shell} completion offers the hidden manpage"
        );
    }
}
