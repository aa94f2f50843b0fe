//! The one way tests start the Graph emulator (`tools/graph-emulator`, its own
//! package in the workspace so the shipped `cutover` binary carries no HTTP
//! server): [`emulator_path`] finds the binary, [`Emulator`] builds its
//! command line and [`RunningEmulator`] is the process on a free loopback
//! port, stopped when dropped.
//!
//! Cargo sets `CARGO_BIN_EXE_graph-emulator` only for the emulator package's
//! own tests (which include this file too), so the root crate's tests look
//! for the binary where Cargo puts it and build it once per test process
//! when it is missing or older than its sources; a plain `cargo test` works
//! without building the emulator first.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The tenant and app the tests register with the emulator.
pub const TENANT: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

/// Names an emulator executable to use instead of looking for (and building)
/// one in the target directory.
pub const PATH_ENV: &str = "CUTOVER_GRAPH_EMULATOR";

/// The workspace root: this file is compiled into the root package's tests,
/// examples and benchmarks (the emulator's own tests never get this far, see
/// [`emulator_path`]).
const WORKSPACE_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `graph-emulator` executable: `$CUTOVER_GRAPH_EMULATOR` when set, the
/// package's own binary in the emulator's tests, else
/// `<target dir>/<profile>/graph-emulator` beside the running executable
/// (`target/debug/deps/NAME-HASH` → `target/debug/graph-emulator`), built
/// with `cargo build -p graph-emulator` in the same profile first when it
/// is missing or older than its sources. Looked up once per process.
pub fn emulator_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(locate).clone()
}

fn locate() -> PathBuf {
    if let Some(path) = std::env::var_os(PATH_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{PATH_ENV}={}: no such file", path.display());
        return path;
    }
    if let Some(path) = option_env!("CARGO_BIN_EXE_graph-emulator") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("locate the running test executable");
    // deps/ (tests, benches) or examples/ sits in the profile's directory.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not inside a Cargo target directory", exe.display()));
    let bin = profile_dir.join(format!("graph-emulator{}", std::env::consts::EXE_SUFFIX));
    if !is_current(&bin) {
        build(profile_dir);
    }
    assert!(
        bin.is_file(),
        "`cargo build -p graph-emulator` left no {}; build it yourself or set {PATH_ENV}",
        bin.display()
    );
    bin
}

/// Whether `bin` exists and is newer than the emulator package's manifest
/// and sources.
fn is_current(bin: &Path) -> bool {
    let Some(built) = modified(bin) else {
        return false;
    };
    let package = Path::new(WORKSPACE_ROOT).join("tools/graph-emulator");
    let mut newest = modified(&package.join("Cargo.toml"));
    let mut dirs = vec![package.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                newest = newest.max(modified(&path));
            }
        }
    }
    newest.is_none_or(|n| n <= built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `cargo build -p graph-emulator` into the target directory above
/// `profile_dir`, in the profile that directory belongs to.
fn build(profile_dir: &Path) {
    let target_dir = profile_dir
        .parent()
        .expect("the profile directory is inside the target directory");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "-p", "graph-emulator", "--manifest-path"])
        .arg(Path::new(WORKSPACE_ROOT).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // What Cargo set for this test process describes this package, not the
    // build: a build script that reads one of them (ring's reads
    // CARGO_MANIFEST_DIR) would otherwise rerun here and again, with the
    // variable gone, in the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_set_by_cargo_for_run(&name) {
            command.env_remove(&*name);
        }
    }
    // `cargo test` builds with the test profile into debug/, `cargo bench`
    // with the bench profile into release/: those directories' own profiles.
    match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
        None => {}
    }
    eprintln!("building the Graph emulator: {command:?}");
    let status = command.status().expect("run cargo to build the Graph emulator");
    assert!(status.success(), "`cargo build -p graph-emulator` failed: {status}");
}

/// The variables Cargo sets when it runs a test, bench or example (as
/// opposed to the user's configuration, such as `CARGO_HOME` or
/// `CARGO_TARGET_DIR`, which the nested build keeps).
fn is_set_by_cargo_for_run(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_EXE_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || [
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

/// The emulator's command line, built up by the test: every emulator listens
/// on a free loopback port and accepts [`TENANT`] and [`CLIENT`]; arguments
/// follow in the order they are added.
pub struct Emulator {
    command: Command,
}

impl Default for Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Emulator {
    pub fn new() -> Emulator {
        let mut command = Command::new(emulator_path());
        command
            .args(["--listen", "127.0.0.1:0", "--tenant-id", TENANT, "--client-id", CLIENT])
            .stderr(Stdio::inherit());
        Emulator { command }
    }

    /// The client secret the token endpoint accepts.
    pub fn client_secret(self, secret: &str) -> Emulator {
        self.args(["--client-secret", secret])
    }

    /// A PEM certificate whose key signs the client assertions it accepts.
    pub fn client_cert(self, pem: &Path) -> Emulator {
        self.arg("--client-cert").arg(pem)
    }

    /// The seed of every random choice (ids, fault draws, batch order).
    pub fn seed(self, seed: u64) -> Emulator {
        self.args(["--seed", &seed.to_string()])
    }

    /// Every emulated duration runs at this fraction of real time.
    pub fn time_scale(self, scale: f64) -> Emulator {
        self.args(["--time-scale", &scale.to_string()])
    }

    /// Comma-separated mailboxes: any other user is unknown (404).
    pub fn mailboxes(self, list: &str) -> Emulator {
        self.args(["--mailboxes", list])
    }

    /// Discards the emulator's log instead of passing it to the test's stderr.
    pub fn quiet(mut self) -> Emulator {
        self.command.stderr(Stdio::null());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Emulator {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Emulator
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Spawns the emulator and waits for its first line, which says where it
    /// listens.
    pub fn start(mut self) -> RunningEmulator {
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start graph-emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the emulator's first line");
        let Some(base_url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line from graph-emulator: {line:?}");
        };
        RunningEmulator {
            base_url: base_url.to_owned(),
            child,
        }
    }
}

/// A started emulator; killed when dropped.
pub struct RunningEmulator {
    /// `http://127.0.0.1:PORT`, the root of both Graph and the token endpoint.
    pub base_url: String,
    pub child: Child,
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
