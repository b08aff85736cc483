//! Asking for a missing OAuth client id or secret, only when a person is at a terminal.

use std::io::{self, BufRead, IsTerminal, Write};

/// Why nothing could be asked.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// stdin is a pipe or file: scripts must pass the value as an option.
    #[error(
        "the {what} is missing: give it with {option} (stdin is not a terminal, so it cannot be asked for)"
    )]
    NotATerminal {
        /// "client ID" or "client secret".
        what: &'static str,
        /// The option that supplies it.
        option: &'static str,
    },
    /// Reading the answer failed, or the terminal closed.
    #[error("could not read the {what}: {source}")]
    Read {
        /// "client ID" or "client secret".
        what: &'static str,
        /// The I/O error.
        source: io::Error,
    },
}

/// Asks `Client ID: ` on the terminal.
pub fn client_id() -> Result<String, PromptError> {
    const WHAT: &str = "client ID";
    ensure_terminal(WHAT, "-i/--client-id")?;
    let read = |source| PromptError::Read { what: WHAT, source };
    // The prompt goes to stderr so that stdout carries only the result.
    let mut stderr = io::stderr();
    write!(stderr, "Client ID: ")
        .and_then(|()| stderr.flush())
        .map_err(read)?;
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line).map_err(read)? == 0 {
        return Err(read(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(line.trim().to_owned())
}

/// Asks `Client secret: ` on the terminal without echoing the answer.
pub fn client_secret() -> Result<String, PromptError> {
    const WHAT: &str = "client secret";
    ensure_terminal(WHAT, "-s/--client-secret")?;
    rpassword::prompt_password("Client secret: ")
        .map_err(|source| PromptError::Read { what: WHAT, source })
}

fn ensure_terminal(what: &'static str, option: &'static str) -> Result<(), PromptError> {
    if io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(PromptError::NotATerminal { what, option })
    }
}
