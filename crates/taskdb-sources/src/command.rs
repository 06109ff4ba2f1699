//! Running a model as a child process (`--command "CMD"`).

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::input::read_line_bounded;
use crate::model::{ModelOutputs, PredictionOptions, ReplyCollector, MAX_REPLY_LINE};
use crate::probe::{input_line, ProbeSet};
use crate::prompt::PromptTemplate;

/// Default [`CommandOptions::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default [`CommandOptions::stderr_tail_bytes`].
pub const DEFAULT_STDERR_TAIL: usize = 64 * 1024;

/// Options of [`run_command`].
#[derive(Debug, Clone)]
pub struct CommandOptions {
    /// Wall-clock limit for the whole run, from spawn to exit (default 1 hour). On
    /// expiry the child's whole process group is killed.
    pub timeout: Duration,
    /// With a prompt, each input's "text" is the filled-in prompt.
    pub prompt: Option<PromptTemplate>,
    /// Verbalizers and the unmatched-reply limit.
    pub predictions: PredictionOptions,
    /// How much of the end of the child's stderr is kept for error messages.
    pub stderr_tail_bytes: usize,
}

impl Default for CommandOptions {
    fn default() -> Self {
        CommandOptions {
            timeout: DEFAULT_TIMEOUT,
            prompt: None,
            predictions: PredictionOptions::default(),
            stderr_tail_bytes: DEFAULT_STDERR_TAIL,
        }
    }
}

/// Kills the child's process group on drop (unless disarmed).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl GroupGuard {
    fn kill(&self) {
        if self.pgid > 0 {
            // SAFETY: kill(2) with a negative pid signals the process group we created
            // for the child; no memory is touched.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
    }
}

struct StderrTail {
    buf: Arc<Mutex<VecDeque<u8>>>,
    done: mpsc::Receiver<()>,
}

impl StderrTail {
    /// The captured tail, waiting up to `grace` for the child's stderr to close.
    fn get(&self, grace: Duration) -> String {
        let _ = self.done.recv_timeout(grace);
        let b = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        let (a, c) = b.as_slices();
        let mut v = a.to_vec();
        v.extend_from_slice(c);
        String::from_utf8_lossy(&v).trim_end().to_string()
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

enum Msg {
    Line(u64, Vec<u8>),
    TooLong(u64),
    Eof,
    Err(std::io::Error),
}

/// Runs `cmd` through `sh -c` as a model over `probe`.
///
/// The child gets U on stdin as JSON lines `{"id": N, "text": "..."}` (plus
/// "text_pair"; with a prompt, "text" is the filled-in prompt) written from a separate
/// thread, and must write one reply line per input to stdout: `{"id": N, "label": ...}`
/// or `{"id": N, "scores": {...}}` (with verbalizers, the reply text may be in "reply"
/// or "label"). Stdout is streamed line by line; stderr keeps only its last
/// `stderr_tail_bytes`. The child runs in its own process group, which is killed on
/// timeout, on a protocol error, and after the child exits (stray grandchildren).
pub fn run_command(cmd: &str, probe: &ProbeSet, opts: &CommandOptions) -> Result<ModelOutputs> {
    if let Some(p) = &opts.prompt {
        p.check(probe)?;
    }
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut child: Child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Spawn {
            cmd: cmd.to_string(),
            source: e,
        })?;
    let mut guard = GroupGuard {
        pgid: child.id() as i32,
        armed: true,
    };

    // stdin writer
    let mut stdin = child.stdin.take().expect("piped stdin");
    let lines: Vec<Vec<u8>> = probe
        .texts
        .iter()
        .map(|t| input_line(t, opts.prompt.as_ref()))
        .collect();
    std::thread::spawn(move || {
        for l in &lines {
            if stdin.write_all(l).is_err() {
                return; // child closed stdin (exited or does not read): not our error
            }
        }
        let _ = stdin.flush();
        drop(stdin);
    });

    // stderr ring buffer
    let mut stderr = child.stderr.take().expect("piped stderr");
    let cap = opts.stderr_tail_bytes.max(1);
    let ring = Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(1 << 20))));
    let (done_tx, done_rx) = mpsc::channel();
    {
        let ring = Arc::clone(&ring);
        std::thread::spawn(move || {
            let mut b = [0u8; 8192];
            loop {
                match stderr.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut r) = ring.lock() {
                            r.extend(&b[..n]);
                            let over = r.len().saturating_sub(cap);
                            r.drain(..over);
                        }
                    }
                }
            }
            let _ = done_tx.send(());
        });
    }
    let tail = StderrTail {
        buf: ring,
        done: done_rx,
    };

    // stdout reader: bounded channel, so memory stays bounded.
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::sync_channel::<Msg>(256);
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 16, stdout);
        let mut buf = Vec::new();
        let mut line = 0u64;
        loop {
            match read_line_bounded(&mut r, &mut buf, MAX_REPLY_LINE) {
                Ok(None) => {
                    let _ = tx.send(Msg::Eof);
                    return;
                }
                Ok(Some(too_long)) => {
                    line += 1;
                    let m = if too_long {
                        Msg::TooLong(line)
                    } else {
                        Msg::Line(line, std::mem::take(&mut buf))
                    };
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Msg::Err(e));
                    return;
                }
            }
        }
    });

    let source = format!("command `{cmd}`");
    let mut col = ReplyCollector::new(probe, &opts.predictions, source.clone());
    let timeout_err = |col: &ReplyCollector, guard: &GroupGuard, child: &mut Child| {
        guard.kill();
        let _ = child.wait();
        Error::Timeout {
            cmd: cmd.to_string(),
            timeout: opts.timeout,
            lines: col.lines(),
            stderr_tail: tail.get(Duration::from_millis(500)),
        }
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Line(n, bytes)) => {
                if let Err(e) = col.handle(n, &bytes) {
                    guard.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            }
            Ok(Msg::TooLong(n)) => {
                guard.kill();
                let _ = child.wait();
                return Err(Error::BadPrediction {
                    source_name: source,
                    line: n,
                    msg: format!("line longer than {MAX_REPLY_LINE} bytes"),
                });
            }
            Ok(Msg::Err(e)) => {
                guard.kill();
                let _ = child.wait();
                return Err(Error::Spawn {
                    cmd: cmd.to_string(),
                    source: e,
                });
            }
            Ok(Msg::Eof) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => return Err(timeout_err(&col, &guard, &mut child)),
        }
    }
    // stdout closed: wait for the exit within the deadline.
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                return Err(timeout_err(&col, &guard, &mut child))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(Error::Spawn {
                    cmd: cmd.to_string(),
                    source: e,
                })
            }
        }
    };
    guard.kill(); // stray grandchildren
    guard.armed = false;
    if !status.success() {
        return Err(Error::ChildFailed {
            cmd: cmd.to_string(),
            status: describe(status),
            lines: col.lines(),
            stderr_tail: tail.get(Duration::from_secs(1)),
        });
    }
    let complete = col.finish("");
    match complete {
        Err(Error::TooFewLines {
            source_name,
            got,
            expected,
            missing,
            ..
        }) => {
            let t = tail.get(Duration::from_millis(500));
            Err(Error::TooFewLines {
                source_name,
                got,
                expected,
                missing,
                stderr: if t.is_empty() {
                    String::new()
                } else {
                    format!(" Its stderr (last part):\n{t}")
                },
            })
        }
        other => other,
    }
}
