//! Build script (not `src/build.rs`, which builds values from settings):
//! stamps the git revision into the binary for `cutover --version`, as
//! `CUTOVER_GIT_REVISION` (`1a2b3c4`, `1a2b3c4-dirty` when tracked files
//! differ from HEAD, `unknown` outside a git checkout, e.g. a crate from
//! `cargo install`). It never fails the build: no git, no repository, a
//! repository that is not this crate's, or any git error all give `unknown`.
//!
//! The revision is asked of git when one of these changes: HEAD and the
//! branch it points to (a commit, a checkout), the sources, the manifest
//! and the lock file (which make a clean tree dirty and back).
//! `CUTOVER_GIT_REVISION` in the build's environment wins over git, for
//! builds from a tree without `.git` (a container build context, a tarball).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CUTOVER_GIT_REVISION");
    for path in ["build.rs", "Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let revision = match std::env::var("CUTOVER_GIT_REVISION") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_owned(),
        _ => {
            let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
            from_git(&dir).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=CUTOVER_GIT_REVISION={revision}");
}

/// The short revision of the checkout `dir` is the root of (`-dirty` when
/// tracked files differ from it), watching the files that move HEAD; None
/// when git is missing or fails, or `dir` is not the top of a work tree (a
/// packaged crate unpacked inside some other repository).
fn from_git(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    // What moves HEAD: HEAD itself (a checkout), the branch's ref (a
    // commit), packed refs, a reftable. Only existing paths: Cargo reruns
    // the script on every build for a missing one.
    let path_of = |name: &str| git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p));
    let mut watch: Vec<PathBuf> = ["HEAD", "packed-refs", "reftable"]
        .iter()
        .filter_map(|n| path_of(n))
        .collect();
    if let Some(branch) = git(dir, &["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|b| b.starts_with("refs/")) {
        match path_of(&branch) {
            Some(loose) if loose.exists() => watch.push(loose),
            // A branch only in packed-refs gets a loose ref on the next
            // commit: watch the folder it will appear in.
            _ => watch.extend(Path::new(&branch).parent().and_then(|p| path_of(&p.to_string_lossy()))),
        }
    }
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let short = git(dir, &["rev-parse", "--short", "HEAD"])?;
    // --no-optional-locks: refresh the index in memory only, so the build
    // never takes index.lock from under someone's git command.
    let status = git(
        dir,
        &["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
    )?;
    Some(if status.is_empty() {
        short
    } else {
        format!("{short}-dirty")
    })
}

/// Runs git in `dir`; its trimmed stdout, or None if it could not run or
/// failed. safe.directory: a checkout owned by another user (CI running as
/// root on a clone) is still read.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let safe = format!("safe.directory={}", dir.display());
    let out = Command::new("git")
        .arg("-c")
        .arg(safe)
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
