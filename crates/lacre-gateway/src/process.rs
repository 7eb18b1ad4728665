//! Child processes (command tools and MCP servers on stdio): a minimal
//! environment, a process group of their own, and death with the server.
//!
//! - **Environment**: PATH, HOME and the configured variables only, unless
//!   `inherit_env = true`; the server's own environment may hold
//!   `secret_env` keys, which a tool must never see.
//! - **Process group**: each child leads its own group, so that a kill
//!   (cancel, timeout, shutdown) reaches whatever it started too.
//! - **Death with the server**: on Linux the child asks the kernel for
//!   SIGKILL when the server dies (`PR_SET_PDEATHSIG`), so that a server
//!   killed with SIGKILL leaves no child behind; grandchildren see their
//!   stdin close. The request is tied to the thread that spawns the child,
//!   so children are spawned from the runtime's worker threads (which live
//!   as long as the server), never from a blocking-pool thread.

use lacre_server::config::upstreams::ChildCommand;
use std::os::fd::RawFd;
use std::process::Stdio;

/// The file descriptor on which a long-running command reports progress.
pub const PROGRESS_FD: RawFd = 3;

/// A command configured for `c`, with piped stdio, not yet spawned.
/// `progress_fd`, when given, is made the child's file descriptor 3.
pub fn command(c: &ChildCommand, progress_fd: Option<RawFd>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&c.program);
    cmd.args(&c.args)
        .current_dir(&c.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if !c.env.inherit {
        cmd.env_clear();
        for name in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
    }
    cmd.envs(&c.env.vars);
    in_child(&mut cmd, progress_fd);
    cmd
}

/// Kills the process group led by `pid` (the child and what it started).
pub fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // ESRCH (already gone) is the common, harmless case.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[allow(unsafe_code)]
fn in_child(cmd: &mut tokio::process::Command, progress_fd: Option<RawFd>) {
    let parent = nix::unistd::getpid();
    let hook = move || -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The server may have died between fork and the line above.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = parent;
        if let Some(fd) = progress_fd {
            // SAFETY: dup2 and fcntl are async-signal-safe system calls on
            // descriptors this process owns; nothing is allocated.
            unsafe {
                if fd == PROGRESS_FD {
                    // dup2 onto itself keeps close-on-exec: clear it.
                    if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if nix::libc::dup2(fd, PROGRESS_FD) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes system calls (prctl,
    // getppid, dup2, fcntl) and builds an io::Error from an errno on
    // failure, without allocating or taking locks.
    unsafe {
        cmd.pre_exec(hook);
    }
}
