//! Starts the project's Graph emulator binary on a free loopback port for a
//! test. The caller builds the command line (limits, faults, time scale);
//! this waits for the emulator to say where it listens.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The tenant and app the tests register with the emulator.
pub const TENANT: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

/// Spawns `command` (the `graph-emulator` binary with its arguments) and
/// returns the process and its base URL, read from its first line.
pub fn start(command: &mut Command) -> (Child, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("start graph-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the emulator's first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from graph-emulator: {line:?}"))
        .to_owned();
    (child, base)
}
