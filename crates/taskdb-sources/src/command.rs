//! Running a model as a child process (`--command "CMD"`).

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
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

/// Process groups of model commands now running, so that a signal handler can end them
/// when taskdb itself is killed ([`kill_model_processes`]). 0 = free slot.
static LIVE_GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

fn register_group(pgid: i32) {
    for slot in &LIVE_GROUPS {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
    // More than 64 concurrent commands: this one is not ended by a signal handler (it still
    // gets PR_SET_PDEATHSIG and is killed on every error and timeout).
}

fn unregister_group(pgid: i32) {
    for slot in &LIVE_GROUPS {
        let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Kills (SIGKILL) the process group of every model command this process is running.
///
/// Async-signal-safe (atomics and kill(2) only): meant for a SIGINT/SIGTERM handler of the
/// host program. The model commands run in process groups of their own (so that a timeout
/// can kill their grandchildren too), which also means a terminal's Ctrl-C does not reach
/// them: without this they outlive a killed taskdb. [`install_signal_cleanup`] installs
/// such a handler.
pub fn kill_model_processes() {
    for slot in &LIVE_GROUPS {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) is async-signal-safe; a negative pid addresses the group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    kill_model_processes();
    // SAFETY: signal(2) and raise(3) are async-signal-safe. Restoring the default action and
    // re-raising ends the process with the same signal status as without this handler (the
    // signal is blocked while the handler runs and is delivered when it returns).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT that end every running model
/// command's process group ([`kill_model_processes`]), then let the signal take its default
/// action (the process still dies of that signal). Signals the host ignores stay ignored.
/// For a process that can install handlers (a CLI); a library user with its own handlers
/// calls [`kill_model_processes`] from them instead.
pub fn install_signal_cleanup() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls async-signal-safe functions; the old
        // disposition is read first so an ignored signal (nohup) stays ignored.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                || old.sa_sigaction == libc::SIG_IGN
            {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Blocks SIGPIPE in the calling thread, so that a write into a pipe whose reader has gone
/// fails with EPIPE instead of raising SIGPIPE, whose default action (which a host such as
/// the taskdb CLI may have restored) kills the whole process. A blocked SIGPIPE raised by
/// a write is directed at this thread only and is discarded when the thread exits.
fn block_sigpipe_in_this_thread() {
    // SAFETY: plain signal-mask calls on a local, initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
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
        unregister_group(self.pgid);
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
        (Some(127), _) => "exit status 127: the shell could not find the command; check the \
                           program name, its path and PATH"
            .into(),
        (Some(126), _) => "exit status 126: the command is not executable; check its \
                           permissions (chmod +x) or run it through its interpreter"
            .into(),
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
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid). If taskdb dies (even by SIGKILL, which
    // no handler sees), the kernel kills the model command; `sh -c` execs a simple
    // command, so that is the model itself.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if libc::getppid() != parent {
                    // taskdb died between fork and prctl.
                    libc::_exit(137);
                }
            }
            let _ = parent;
            Ok(())
        });
    }
    let mut child: Child = command.spawn().map_err(|e| Error::Spawn {
        cmd: cmd.to_string(),
        source: e,
    })?;
    let mut guard = GroupGuard {
        pgid: child.id() as i32,
        armed: true,
    };
    register_group(guard.pgid);

    // stdin writer
    let mut stdin = child.stdin.take().expect("piped stdin");
    let lines: Vec<Vec<u8>> = probe
        .texts
        .iter()
        .map(|t| input_line(t, opts.prompt.as_ref()))
        .collect();
    let total_inputs = lines.len() as u64;
    let written = Arc::new(AtomicU64::new(0));
    {
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            block_sigpipe_in_this_thread();
            for l in &lines {
                if stdin.write_all(l).is_err() {
                    // The child closed its stdin (exited, crashed, or does not read it):
                    // EPIPE, not a signal. What the child did is reported from its exit
                    // status, its stdout and its stderr, not from here.
                    return;
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
            let _ = stdin.flush();
            drop(stdin);
        });
    }
    let input_note = || {
        let w = written.load(Ordering::Relaxed);
        if w < total_inputs {
            format!("; its stdin closed after taskdb had written {w} of {total_inputs} input lines")
        } else {
            String::new()
        }
    };

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
    let (tx, rx) = mpsc::sync_channel::<Msg>(32);
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
                    return Err(e.with_stderr(&tail.get(Duration::from_millis(500))));
                }
            }
            Ok(Msg::TooLong(n)) => {
                guard.kill();
                let _ = child.wait();
                return Err(Error::BadPrediction {
                    source_name: source,
                    line: n,
                    msg: format!(
                        "line longer than {MAX_REPLY_LINE} bytes; a reply is one short JSON \
                         object per input line"
                    ),
                    stderr: String::new(),
                }
                .with_stderr(&tail.get(Duration::from_millis(500))));
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
            input: input_note(),
            stderr_tail: tail.get(Duration::from_secs(1)),
        });
    }
    col.finish("")
        .map_err(|e| e.with_stderr(&tail.get(Duration::from_millis(500))))
}
