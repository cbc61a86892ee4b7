//! The protocol's own stdio. `berth mcp` speaks MCP on stdin and stdout, and nothing else
//! may: both move to private descriptors (close-on-exec, so no program berth starts
//! inherits them), fd 0 becomes `/dev/null` and fd 1 a copy of stderr. A stray print, or
//! a program berth runs that writes to its stdout, then lands on stderr instead of in the
//! middle of a message, and nothing berth starts can read the client's messages.

use std::fs::File;
use std::os::fd::AsFd;

use crate::error::Result;

/// The client's messages and where the answers go.
pub fn take() -> Result<(tokio::fs::File, tokio::fs::File)> {
    // `try_clone_to_owned` duplicates with F_DUPFD_CLOEXEC.
    let input = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = fs_err::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(null.file()).map_err(std::io::Error::from)?;
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(std::io::Error::from)?;
    Ok((
        tokio::fs::File::from_std(File::from(input)),
        tokio::fs::File::from_std(File::from(output)),
    ))
}
