//! `token_command`: any program that prints an access token for the login
//! it is given (`$CUTOVER_LOGIN`), so an admin can plug in whatever their
//! identity provider needs. Its output is the token, so it is never shown,
//! not even when the command fails; stderr is discarded for the same
//! reason.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Lifetime assumed for a token from a command (it does not say).
pub const COMMAND_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Runs `sh -c command` with `CUTOVER_LOGIN` set, within `timeout`; its
/// stdout, trimmed, is the token.
pub async fn run(command: &str, login: &str, timeout: Duration) -> Result<Secret> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CUTOVER_LOGIN", login)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| {
            Error::transient(format!(
                "token_command did not finish within {}s for {login}",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| Error::fatal(format!("token_command could not be run: {e}")))?;
    if !out.status.success() {
        return Err(Error::fatal(format!(
            "token_command failed for {login} ({}); run it by hand with CUTOVER_LOGIN={login} to see why",
            out.status
        )));
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Error::fatal(format!(
            "token_command printed no single token for {login}; it must print the access token alone on stdout"
        )));
    }
    Ok(Secret::new(token))
}
