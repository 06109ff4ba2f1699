//! Running a model as a child process (`--command "CMD"`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
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
    // More than 64 concurrent commands: this one is not ended by a signal handler (its
    // supervisor still kills its group once taskdb is dead, it still gets
    // PR_SET_PDEATHSIG, and it is killed on every error and timeout).
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
/// them. Each command's supervisor would also kill the group once taskdb is dead; this ends
/// it first, while taskdb still runs, so that nothing of the model outlives taskdb's exit.
/// [`install_signal_cleanup`] installs such a handler.
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
    /// Dismissed as soon as taskdb has killed the group itself.
    supervisor: Supervisor,
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
        // Every member of the group now has a SIGKILL pending (a fork racing with it
        // fails), so the supervisor has nothing left to do.
        self.supervisor.dismiss();
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

/// The supervisor's script: `$0` names it in `ps`; the model's process group id arrives
/// as the first line on stdin; it then waits for EOF and kills that group.
const SUPERVISOR_SCRIPT: &str = "read -r g || exit 0; \
     case $g in ''|*[!0-9]*) exit 0 ;; esac; \
     while read -r _; do :; done; \
     kill -s KILL -- -\"$g\" 2>/dev/null";

/// A tiny watchdog per model command that ends the model's whole process group when
/// taskdb dies in a way no handler sees (SIGKILL, the OOM killer, an abort).
///
/// `PR_SET_PDEATHSIG` kills only the `sh` that taskdb starts; what that shell starts
/// without `exec` (a script running `python`, `cat >/dev/null; sleep 1000`) would survive
/// a SIGKILLed taskdb. The supervisor is an `sh` running [`SUPERVISOR_SCRIPT`], a sibling
/// of the model (taskdb's child, in taskdb's process group, never in the model's):
///
/// * Its stdin is a pipe whose only write end is taskdb's (`ChildStdin`, opened
///   `O_CLOEXEC` by std, so no model or other child keeps a copy past its `exec`).
/// * The model's child writes its own pid (= its process group id, `process_group(0)`) to
///   that pipe from `pre_exec`, before it `exec`s the model, so the group is covered from
///   before the model runs a single instruction of its own.
/// * When taskdb dies, however it dies, the kernel closes the write end; `read` sees EOF
///   and the supervisor kills the group with SIGKILL, grandchildren included.
/// * On every path where taskdb lives on (success, failure, timeout, protocol error,
///   unwinding panic) taskdb kills the group itself ([`GroupGuard::kill`]) and at once
///   dismisses the supervisor: SIGKILLs it (it is taskdb's own unreaped child, so its pid
///   cannot have been reused) and reaps it: no zombie, and no write into a pipe whose
///   reader may be gone (no SIGPIPE). If the model's `sh` cannot be spawned, dropping the
///   supervisor dismisses it the same way.
/// * It ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT (set before `exec`; a non-interactive
///   shell cannot un-ignore them): a terminal's Ctrl-C reaches taskdb's foreground group,
///   supervisor included, and the supervisor must outlive taskdb long enough to see the
///   EOF. With the taskdb CLI the signal handler ([`install_signal_cleanup`]) has already
///   killed the group (the supervisor's kill is then a no-op); a library host without that
///   handler still gets the group killed. It lives no longer than taskdb plus one `kill`.
///   It gets no `PR_SET_PDEATHSIG`: it has to outlive taskdb.
///
/// Residual risks, documented rather than handled:
/// * pgid reuse: the supervisor kills a group by number. While the model's `sh` (the
///   group leader, taskdb's child) is unreaped, or any process of the group lives, the
///   kernel does not reuse the number. On the error and timeout paths taskdb kills the
///   group and dismisses the supervisor before it reaps the leader: no window. On the
///   success path taskdb reaps the leader first (`try_wait`), then kills the group and
///   dismisses the supervisor: if taskdb is SIGKILLed in those few instructions and the
///   group is already empty, the number could be reused, but only if pids wrap around to
///   exactly it and the new process makes itself a group leader before the supervisor
///   (woken at once by the EOF) runs `kill`.
/// * A grandchild that leaves the group (`setsid`, `setpgid`: daemons) escapes, as it
///   escapes the timeout's kill; only a cgroup would hold it.
/// * If the supervisor itself is killed by someone else, `PR_SET_PDEATHSIG` still ends
///   the model's `sh`, as before. If it cannot be started, `run_command` fails as it would
///   if the model's own `sh` could not be started.
///
/// Cost: one extra `sh` per model command (fork + exec; measured in docs/RELIABILITY.md,
/// promise 2).
struct Supervisor {
    /// `None` once dismissed.
    child: RefCell<Option<Child>>,
}

impl Supervisor {
    fn spawn() -> std::io::Result<Supervisor> {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("taskdb-model-supervisor")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: signal(2) is async-signal-safe; runs in the forked child before exec.
        unsafe {
            c.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        Ok(Supervisor {
            child: RefCell::new(Some(c.spawn()?)),
        })
    }

    /// taskdb's write end of the supervisor's stdin.
    fn write_fd(&self) -> RawFd {
        self.child
            .borrow()
            .as_ref()
            .and_then(|c| c.stdin.as_ref())
            .map_or(-1, |s| s.as_raw_fd())
    }

    /// Ends the supervisor without letting it kill anything, and reaps it. Idempotent.
    fn dismiss(&self) {
        let Some(mut child) = self.child.borrow_mut().take() else {
            return;
        };
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is still its.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        // Closed only after the SIGKILL is queued: the supervisor cannot act on the EOF.
        drop(child.stdin.take());
        let _ = child.wait();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.dismiss();
    }
}

/// Writes `pid` and a newline to `fd` without allocating (for `pre_exec`), with SIGPIPE
/// ignored for the write so that a vanished reader gives EPIPE, not the forked child's
/// death. Async-signal-safe: sigaction(2), write(2) and stack memory only.
///
/// # Safety
/// Only for the forked child before exec (it changes the SIGPIPE disposition meanwhile).
unsafe fn write_pid_line(fd: RawFd, pid: libc::pid_t) {
    let mut buf = [0u8; 24];
    let mut i = buf.len() - 1;
    buf[i] = b'\n';
    let mut n = pid.max(0) as u64;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut ign: libc::sigaction = std::mem::zeroed();
    ign.sa_sigaction = libc::SIG_IGN;
    libc::sigemptyset(&mut ign.sa_mask);
    let mut old: libc::sigaction = std::mem::zeroed();
    let restore = libc::sigaction(libc::SIGPIPE, &ign, &mut old) == 0;
    // At most 21 bytes: one atomic pipe write; a failure leaves only PR_SET_PDEATHSIG.
    let _ = libc::write(fd, buf[i..].as_ptr().cast(), buf.len() - i);
    if restore {
        libc::sigaction(libc::SIGPIPE, &old, std::ptr::null_mut());
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
/// timeout, on a protocol error, and after the child exits (stray grandchildren), and,
/// through a [`Supervisor`] process, when taskdb itself dies, even by SIGKILL.
pub fn run_command(cmd: &str, probe: &ProbeSet, opts: &CommandOptions) -> Result<ModelOutputs> {
    if let Some(p) = &opts.prompt {
        p.check(probe)?;
    }
    let start = Instant::now();
    let deadline = start + opts.timeout;
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    // Started before the model, dismissed when taskdb has killed the model's group itself
    // (`GroupGuard::kill`): see [`Supervisor`].
    let supervisor = Supervisor::spawn().map_err(|e| Error::Spawn {
        cmd: cmd.to_string(),
        source: e,
    })?;
    let supervisor_fd = supervisor.write_fd();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (getpid, sigaction, write, prctl, getppid). It first
    // hands its pid, which is its process group id, to the supervisor, which kills that
    // group if taskdb dies from now on (grandchildren included). If taskdb dies (even by
    // SIGKILL, which no handler sees), the kernel also kills the model's `sh` itself.
    unsafe {
        command.pre_exec(move || {
            // Above 2 always (std keeps fds 0-2 open); a lower number would be the
            // model's own stdio by now.
            if supervisor_fd > 2 {
                write_pid_line(supervisor_fd, libc::getpid());
            }
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
        supervisor,
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
