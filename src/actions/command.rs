//! Runs a host tool with an argument vector (never a shell) and a deadline.
//!
//! A tool stuck on a dead SAN (mount, iscsiadm) is killed at the deadline;
//! if it sits in uninterruptible sleep even SIGKILL waits, so after a short
//! grace the child is left to a reaper thread instead of blocking the engine.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a command did not run to a successful end.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("cannot run {command}: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("{command}: killed after {timeout:?}")]
    Killed { command: String, timeout: Duration },
    #[error("{command}: killed after {timeout:?}, still in uninterruptible sleep")]
    Unkillable { command: String, timeout: Duration },
    #[error("{command}: {error}")]
    Wait {
        command: String,
        error: std::io::Error,
    },
    /// `command` is the program and its arguments, without the prefix.
    #[error("{command} exited {}: {stderr}", exit_text(*.code))]
    Exited {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
}

/// An exit code as operators read it.
pub fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "on a signal".to_string(), |c| c.to_string())
}

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `prefix` (e.g. nsenter into PID 1) + `program` + `args`, killed after `timeout`.
pub fn run(
    prefix: &[String],
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let mut argv: Vec<&str> = prefix.iter().map(String::as_str).collect();
    argv.push(program);
    argv.extend_from_slice(args);
    let display = argv.join(" ");
    let (first, rest) = argv.split_first().ok_or(CommandError::Empty)?;
    let child = Command::new(first)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| CommandError::Spawn {
            command: display.clone(),
            error,
        })?;
    wait_with_deadline(child, &display, timeout, false)
}

/// Waits for `child` (stdout and stderr piped) until `timeout`, then kills
/// it, and with `group` its whole process group (a helper's own tools).
pub(crate) fn wait_with_deadline(
    mut child: Child,
    display: &str,
    timeout: Duration,
    group: bool,
) -> Result<CommandOutput, CommandError> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let readers = [stdout.map(drain), stderr.map(drain)];
    let deadline = crate::input::deadline(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                if group {
                    if let Ok(pid) = i32::try_from(child.id()) {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                let _ = child.kill();
                let grace = crate::input::deadline(Duration::from_secs(1));
                while Instant::now() < grace {
                    if let Ok(Some(_)) = child.try_wait() {
                        return Err(CommandError::Killed {
                            command: display.to_string(),
                            timeout,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
                return Err(CommandError::Unkillable {
                    command: display.to_string(),
                    timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => {
                return Err(CommandError::Wait {
                    command: display.to_string(),
                    error,
                })
            }
        }
    };
    let [out, err] = readers;
    let collect = |reader: Option<std::thread::JoinHandle<String>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    Ok(CommandOutput {
        success: status.success(),
        code: status.code(),
        stdout: collect(out),
        stderr: collect(err),
    })
}

/// Like `run`, but a non-zero exit is an error carrying the tool's stderr.
pub fn run_checked(
    prefix: &[String],
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let output = run(prefix, program, args, timeout)?;
    if output.success {
        Ok(output)
    } else {
        Err(CommandError::Exited {
            command: format!("{program} {}", args.join(" ")),
            code: output.code,
            stderr: output.stderr.trim().to_string(),
        })
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut limited = (&mut pipe).take(64 * 1024);
        let _ = limited.read_to_string(&mut text);
        // Keep draining so a chatty tool never blocks on a full pipe.
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = run(&[], "echo", &["a b"], Duration::from_secs(5)).unwrap();
        assert!(out.success);
        assert_eq!(out.stdout, "a b\n");
        let err = run_checked(&[], "false", &[], Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, CommandError::Exited { code: Some(1), .. }));
        assert!(err.to_string().contains("exited 1"), "{err}");
    }

    #[test]
    fn kills_at_the_deadline_and_reports_missing_tools() {
        let started = Instant::now();
        let err = run(&[], "sleep", &["10"], Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, CommandError::Killed { .. }), "{err}");
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let err = run(&[], "/no/such/tool", &[], Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("cannot run"), "{err}");
    }

    #[test]
    fn prefix_comes_first() {
        let prefix = vec!["env".to_string()];
        let out = run(&prefix, "echo", &["x"], Duration::from_secs(5)).unwrap();
        assert_eq!(out.stdout, "x\n");
    }
}
