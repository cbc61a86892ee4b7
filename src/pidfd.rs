//! pidfds (Linux 5.3): a descriptor that stands for one process for as long as it is
//! open. A signal sent through it reaches that process or, once the process has
//! exited, nobody, even if the kernel has given its PID to another process meanwhile;
//! and it becomes readable when the process exits, so an exit is awaited without a
//! thread or polling.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::signal::Signal;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

/// An open pidfd (close-on-exec, as the kernel makes every pidfd).
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

/// Why [`Pidfd::open`] gave no pidfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The kernel has no `pidfd_open` (ENOSYS, before Linux 5.3), or a seccomp filter
    /// refuses it (EPERM, which `pidfd_open` itself never returns): callers fall back
    /// to plain PIDs.
    Unsupported,
    /// Anything else: no process has this PID (ESRCH), or it names a thread rather
    /// than a process (EINVAL), or descriptors ran out.
    Failed(Errno),
}

impl Pidfd {
    /// Opens a pidfd for the process `pid`.
    pub fn open(pid: u32) -> Result<Pidfd, OpenError> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or(OpenError::Failed(Errno::SRCH))?;
        rustix::process::pidfd_open(pid, PidfdFlags::empty())
            .map(Pidfd)
            .map_err(|error| match error {
                Errno::NOSYS | Errno::PERM => OpenError::Unsupported,
                other => OpenError::Failed(other),
            })
    }

    /// Sends `signal` to the process; fails with ESRCH once it has exited.
    pub fn send_signal(&self, signal: Signal) -> std::io::Result<()> {
        let signal = rustix::process::Signal::from_named_raw(signal as i32)
            .ok_or(std::io::Error::from(Errno::INVAL))?;
        rustix::process::pidfd_send_signal(&self.0, signal)?;
        Ok(())
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_signals_its_process_and_nobody_once_it_has_exited() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pidfd = match Pidfd::open(child.id()) {
            Ok(pidfd) => pidfd,
            Err(OpenError::Unsupported) => {
                eprintln!("SKIPPED: this kernel has no pidfds");
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
            Err(OpenError::Failed(error)) => panic!("pidfd_open of a live child: {error}"),
        };
        pidfd.send_signal(Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        // Reaped: its PID is free for the kernel to reuse, and the pidfd still stands for
        // the process that exited, so nothing receives the signal.
        let error = pidfd.send_signal(Signal::SIGTERM).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ESRCH));
        assert_eq!(
            Pidfd::open(u32::MAX).unwrap_err(),
            OpenError::Failed(Errno::SRCH)
        );
    }
}
