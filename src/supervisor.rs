//! Supervisor: the Linux side of PID 1. It owns every process and signal
//! call envinit makes: blocking signals and receiving them on a signalfd,
//! spawning the child with its original signal mask in its own process group
//! (and the terminal's foreground group), reaping every child in batches,
//! and sending the signals that [`Lifecycle`] decides on.
//!
//! Promises:
//! - Signals are blocked before the spawn, so none is lost; all of them
//!   arrive in one place (the signalfd), read in one blocking loop that
//!   wakes only for a signal, a deadline, or a followed log file's change
//!   (`--stdout`/`--stderr`, see [`crate::follow`], whose deadline, while
//!   it holds a rotated file, joins the lifecycle's), or a reload's signal,
//!   watched change or deadline ([`crate::reload`]): no polling. Both are
//!   [`Extras`], one pointer, null without either: such a start's wake-up
//!   is what it was before either existed.
//! - The child starts with the signal mask envinit was started with, default
//!   dispositions for everything envinit did not inherit as ignored, and no
//!   file descriptor envinit opened (they are all close-on-exec); the ones
//!   envinit inherited pass through, as through exec.
//! - Once the child runs, nothing ends the loop but the end of the child and
//!   of everything left to reap: unexpected errors are logged and the loop
//!   carries on.
//! - A pid is signalled only while it is ours (not yet reaped); "no such
//!   process" (ESRCH) means already gone.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::PollFd;
use nix::unistd::{self, ForkResult, Pid};

use crate::exit::{self, Failure, os_failure};
use crate::follow::Followers;
use crate::launch::Launch;
use crate::lifecycle::{ChildStatus, Lifecycle, Processes, StopCause, SuperviseSettings};
use crate::options::format_duration;
use crate::reload::{ReloadTarget, Reloader};
use crate::signals::{
    self,
    intake::{KernelSigset, SignalBuffer, Signals, Wakers, raw, set_mask},
};

mod team;
pub use team::run_team;

/// Spawns `command` and supervises it and everything it leaves behind until
/// all of it is gone; returns how the main child ended.
pub fn run(
    settings: &SuperviseSettings,
    command: &[OsString],
    launch: &Launch,
    signals: Signals,
    extras: &mut Extras,
) -> Result<ChildStatus, Failure> {
    let pid1 = reaper();

    tracing::debug!(
        grace = format_duration(settings.grace).as_str(),
        pre_stop_delay = format_duration(settings.pre_stop_delay).as_str(),
        signal_group = settings.signal_group,
        rewrites = settings.rewrites.len(),
        pid1,
        "supervising"
    );
    let child = spawn(command, launch, signals.original_mask())?;
    tracing::info!(pid = child.as_raw(), "child started");

    let mut os = Linux { child, pid1 };
    let mut lifecycle = Lifecycle::new(settings);
    lifecycle.reload_on(extras.reload_signal());
    let mut others_left = true;
    let mut received = SignalBuffer::new();
    loop {
        if let Some(status) = lifecycle.finished(others_left) {
            log_end(status, &lifecycle);
            return Ok(status);
        }
        // The wake-up path, kept lean (it runs once per reaped orphan):
        // one read of the signalfd, a reap loop, and the clock only when a
        // signal or a deadline needs it.
        let deadline = lifecycle.deadline();
        let mut reap = false;
        for signal in received.next(&signals, deadline, &*extras) {
            if signal == libc::SIGCHLD {
                reap = true;
            } else {
                lifecycle.on_signal(signal, Instant::now(), &mut os);
            }
        }
        extras.on_ready(&mut lifecycle, &mut os);
        if reap {
            others_left = reap_all(child, &mut lifecycle, &mut os);
            if lifecycle.child_gone() {
                lifecycle.after_reaping(others_left, Instant::now(), &mut os);
            }
        }
        // A deadline set during this wake-up is acted on by the next one
        // (its poll returns at once if it is already due).
        if deadline.is_some() {
            lifecycle.on_tick(Instant::now(), &mut os);
        }
    }
}

/// Whether envinit is PID 1; when it is not, it becomes a child subreaper,
/// so that the orphans of its children's trees come to it, not to the
/// host's init.
fn reaper() -> bool {
    let pid1 = unistd::getpid() == Pid::from_raw(1);
    if !pid1 {
        match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => tracing::debug!("not PID 1: became a child subreaper"),
            Err(e) => crate::logging::warn_error(
                "not PID 1 and cannot become a subreaper: orphans go to the host's init",
                e.desc(),
            ),
        }
    }
    pid1
}

/// Reaps every child that has changed state, in one batch; tells the
/// lifecycle about the main child. Returns whether any child is left.
fn reap_all(child: Pid, lifecycle: &mut Lifecycle, os: &mut Linux) -> bool {
    let mut reaped = 0u32;
    let left = loop {
        let (pid, status) = match next_changed() {
            Ok(changed) => changed,
            Err(left) => break left,
        };
        let exited = ended(status);
        if pid != child.as_raw() {
            reaped += u32::from(exited.is_some());
            continue;
        }
        match exited {
            Some(end) => lifecycle.on_child_exit(end),
            None if libc::WIFSTOPPED(status) => lifecycle.on_child_stopped(true, os),
            None => lifecycle.on_child_stopped(false, os),
        }
    };
    if reaped > 0 {
        tracing::trace!(count = reaped, "reaped orphans");
    }
    left
}

/// The next child that changed state (ended, stopped or continued) and its
/// wait status, from one `wait4` as a direct system call; `Err(left)` when
/// no child has changed state now, `left` saying whether any child remains.
/// Both supervision loops reap through it; inlined, as it is the wake-up
/// path.
#[inline(always)]
pub(crate) fn next_changed() -> Result<(libc::pid_t, libc::c_int), bool> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: wait4 only writes the status integer we own (the rusage
        // pointer is null).
        let waited = unsafe {
            raw::syscall4(
                libc::SYS_wait4,
                -1isize as usize,
                std::ptr::from_mut(&mut status) as usize,
                (libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED) as usize,
                0,
            )
        };
        return match waited {
            Ok(0) => Err(true),
            Ok(pid) => Ok((pid as libc::pid_t, status)),
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => Err(false),
            Err(e) => {
                waitpid_failed(e);
                Err(true)
            }
        };
    }
}

/// How a wait status says the child ended; `None` if it only stopped or
/// continued.
#[inline(always)]
pub(crate) fn ended(status: libc::c_int) -> Option<ChildStatus> {
    if libc::WIFEXITED(status) {
        Some(ChildStatus::Exited(
            u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(u8::MAX),
        ))
    } else if libc::WIFSIGNALED(status) {
        Some(ChildStatus::Signaled(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// Starts the child: its own process group (the terminal's foreground group
/// if envinit holds the terminal), envinit's original signal mask, SIGPIPE
/// back to default. Exec errors come back through a close-on-exec pipe and
/// map to 127 (not found) and 126 (not executable). With `--user`, the
/// child sets its groups, gid and uid (real, effective, saved) just before
/// the exec; with a prepared environment it gets that one instead of
/// envinit's.
///
/// A plain fork and execvp rather than `std::process::Command`: everything
/// is prepared before the fork, and this is a third of the allocations (the
/// dearest part of envinit's start-up under musl).
fn spawn(
    command: &[OsString],
    launch: &Launch,
    original_mask: KernelSigset,
) -> Result<Pid, Failure> {
    let Some(program) = command.first() else {
        return Err(Failure::new(exit::USAGE, "no command given"));
    };
    // Words from argv cannot hold a NUL byte; this guards the library API.
    let argv: Vec<CString> = command
        .iter()
        .map(|word| CString::new(word.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| Failure::new(exit::USAGE, "an argument of the command holds a NUL byte"))?;
    let argv = null_terminated(&argv);
    // Only with --user or --export-file-var: the child's own environment.
    let envp = launch.env.as_deref().map(null_terminated);
    let ids = launch.identity.as_ref().filter(|_| launch.switch);
    let os_error = |what: &str, e: Errno| {
        os_failure(
            &format!("cannot start {:?}: {what}", program.to_string_lossy()),
            e,
        )
    };
    let (report_read, report_write) =
        unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| os_error("pipe", e))?;
    // The terminal goes to the child only if envinit holds it now (it is in
    // the foreground group): `envinit cmd &` in a shell must not steal it.
    let take_terminal = unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|fg| fg == unistd::getpgrp());

    // SAFETY: envinit is single-threaded, so the forked child is a complete
    // copy; even so it only makes async-signal-safe calls and leaves by exec
    // or _exit, never by returning.
    match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => exec_child(
            &argv,
            envp.as_deref(),
            ids,
            &original_mask,
            take_terminal,
            report_write.as_raw_fd(),
        ),
        Ok(ForkResult::Parent { child }) => {
            drop(report_write);
            exec_outcome(program, child, &report_read)
        }
        Err(e) => Err(os_error("fork", e)),
    }
}

/// The C strings' pointers, then a null pointer, as exec takes them.
fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut pointers: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
    pointers.push(std::ptr::null());
    pointers
}

/// After the fork: reads what the child reports on the close-on-exec pipe
/// (nothing: the exec succeeded; errno and the step that failed: it did
/// not, and the child has exited) and turns a failure into its exit code.
fn exec_outcome(program: &OsString, child: Pid, report_read: &OwnedFd) -> Result<Pid, Failure> {
    // errno, then the step that failed (0: the exec).
    let mut report = [0u8; 8];
    let read = loop {
        match unistd::read(report_read, &mut report) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    let n = match read {
        // End of file: the exec succeeded and closed the pipe.
        Ok(0) => return Ok(child),
        Ok(n) => n,
        Err(e) => {
            crate::logging::warn_error(
                "cannot tell whether the exec succeeded; assuming it did",
                e.desc(),
            );
            return Ok(child);
        }
    };
    // The exec failed; the child has _exited: reap it now.
    let _ = nix::sys::wait::waitpid(child, None);
    Err(exec_failure(program, &report, n))
}

/// What the forked child reported (`n` bytes of `report`: errno, then the
/// step that failed) as the failure of starting `program`.
#[cold]
fn exec_failure(program: &OsStr, report: &[u8; 8], n: usize) -> Failure {
    let [e0, e1, e2, e3, s0, s1, s2, s3] = *report;
    let errno = Errno::from_raw(i32::from_ne_bytes([e0, e1, e2, e3]));
    let step = if n == 8 {
        i32::from_ne_bytes([s0, s1, s2, s3])
    } else {
        0
    };
    match USER_STEPS.get(step as usize) {
        Some(call) if step > 0 => Failure::new(
            exit::OS_ERROR,
            format!(
                "cannot start {:?} as the --user: {call} failed: {} (envinit needs root, or CAP_SETUID and CAP_SETGID)",
                program.to_string_lossy(),
                errno.desc()
            ),
        ),
        _ => spawn_error(program, errno),
    }
}

/// What the forked child reports as failed: 0 the exec, then the user switch.
const USER_STEPS: [&str; 4] = ["exec", "setgroups", "setresgid", "setresuid"];

/// In the forked child: set up and exec, or report errno and `_exit` with
/// 127 (not found) or 126.
fn exec_child(
    argv: &[*const libc::c_char],
    envp: Option<&[*const libc::c_char]>,
    ids: Option<&crate::user::Identity>,
    mask: &KernelSigset,
    take_terminal: bool,
    report_fd: RawFd,
) -> ! {
    // SAFETY: only async-signal-safe calls on plain integers and on memory
    // prepared before the fork (argv and envp are NULL-terminated, their
    // strings NUL-terminated, the groups a plain slice, all owned by the
    // parent's frame, which the child shares as a copy until exec). The ids
    // are changed by raw system calls, not through the C library (single
    // thread: no other thread's credentials to keep in step).
    unsafe {
        let fail = |step: i32| -> ! {
            let mut report = [0u8; 8];
            report[..4].copy_from_slice(&Errno::last_raw().to_ne_bytes());
            report[4..].copy_from_slice(&step.to_ne_bytes());
            libc::write(report_fd, report.as_ptr().cast(), report.len());
            libc::_exit(exit::OS_ERROR.into())
        };
        let me = libc::getpid();
        libc::setpgid(0, 0);
        if take_terminal {
            // Make the child's group the foreground, so Ctrl-C and Ctrl-Z
            // reach it (and it alone). SIGTTOU is still blocked here, so
            // this works from a background group. Failure is not fatal.
            libc::tcsetpgrp(0, me);
        }
        // The mask envinit was started with, all 64 bits of it (raw, as
        // musl's sigset calls would drop 32-34).
        let _ = set_mask(libc::SIG_SETMASK, mask, None);
        // Rust's runtime ignores SIGPIPE in envinit; the app gets the default.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if let Some(ids) = ids {
            // Groups first, then the gid, then the uid: after setresuid the
            // child could no longer change the other two.
            let (uid, gid) = (ids.uid as libc::c_long, ids.gid as libc::c_long);
            let groups = ids.groups.as_ptr();
            if libc::syscall(libc::SYS_setgroups, ids.groups.len(), groups) != 0 {
                fail(1);
            }
            if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
                fail(2);
            }
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
                fail(3);
            }
        }
        match envp {
            Some(envp) => libc::execvpe(argv[0], argv.as_ptr(), envp.as_ptr()),
            None => libc::execvp(argv[0], argv.as_ptr()),
        };
        let errno = Errno::last_raw();
        libc::write(report_fd, errno.to_ne_bytes().as_ptr().cast(), 4);
        // As a shell exits: 127 when not found, 126 when not executable.
        let code = match errno {
            libc::ENOENT | libc::ENOTDIR => exit::NOT_FOUND,
            _ => exit::NOT_EXECUTABLE,
        };
        libc::_exit(code.into())
    }
}

/// The exec failure as the OS says it, then what it means and the fix:
/// `cannot run "x": No such file or directory (command not found: ...)`.
fn spawn_error(program: &OsStr, errno: Errno) -> Failure {
    let name = program.to_string_lossy();
    let (code, meaning) = match errno {
        Errno::ENOENT | Errno::ENOTDIR => (
            exit::NOT_FOUND,
            " (command not found: check the name and PATH; for a script, check its #! interpreter)",
        ),
        Errno::EACCES
        | Errno::ENOEXEC
        | Errno::EISDIR
        | Errno::ETXTBSY
        | Errno::ELOOP
        | Errno::EPERM => (
            exit::NOT_EXECUTABLE,
            " (not executable: is it an executable file? chmod +x, or check its #! line)",
        ),
        _ => (exit::NOT_EXECUTABLE, ""),
    };
    Failure::new(
        code,
        format!("cannot run {name:?}: {}{meaning}", errno.desc()),
    )
}

/// The warning when waitpid fails for a reason other than no children.
/// Left to the compiler: written into [`next_changed`], or marked
/// `#[cold]`/`#[inline(never)]`, it made the lockstep reap 114
/// instructions instead of 106 (measured).
fn waitpid_failed(e: Errno) {
    crate::logging::warn_error("waitpid failed; carrying on", e.desc());
}

/// One line at the end: how and why the child ended.
fn log_end(status: ChildStatus, lifecycle: &Lifecycle) {
    let stop = match lifecycle.cause() {
        Some(StopCause::Signal(s)) => Some(signals::name(s)),
        _ => None,
    };
    let why = match lifecycle.cause() {
        None => "on its own",
        Some(StopCause::ChildExited) => "on its own; the processes it left were stopped",
        Some(StopCause::Signal(_)) if lifecycle.killed() => {
            "after a stop signal; killed at the end of the grace period"
        }
        Some(StopCause::Signal(_)) => "after a stop signal",
    };
    let code = u64::from(status.code());
    // One event (absent fields are left out): every event costs the binary
    // a few hundred bytes.
    let (signal, what) = match status {
        ChildStatus::Exited(_) => (None, "child exited"),
        ChildStatus::Signaled(signal) => (Some(signals::name(signal)), "child killed by a signal"),
    };
    tracing::info!(
        code,
        signal = signal.as_deref(),
        why,
        stop = stop.as_deref(),
        "{what}"
    );
}

/// The real [`Processes`]: kill(2) on the child, its group, or the tree.
struct Linux {
    child: Pid,
    pid1: bool,
}

/// Sends a raw signal number (real-time signals included).
fn send(pid: libc::pid_t, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill takes plain integers and touches no memory of ours.
    Errno::result(unsafe { libc::kill(pid, signal) }).map(drop)
}

impl Processes for Linux {
    fn signal_child(&mut self, signal: i32, group: bool) {
        let target = if group {
            -self.child.as_raw()
        } else {
            self.child.as_raw()
        };
        match send(target, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(signal = %signals::name(signal), error = e.desc(), "forwarding failed")
            }
        }
    }

    fn signal_all(&mut self, signal: i32) {
        signal_all(self.pid1, signal);
    }
}

/// Sends `signal` to every process envinit would reap: as PID 1, every
/// other process of the namespace (kill -1); else every descendant.
fn signal_all(pid1: bool, signal: i32) {
    if pid1 {
        match send(-1, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(signal = %signals::name(signal), error = e.desc(), "signalling all failed")
            }
        }
        return;
    }
    for pid in descendants(unistd::getpid().as_raw()) {
        let _ = send(pid, signal);
    }
}

/// Every descendant of `root`, found by walking /proc (only used when not
/// PID 1, where kill(-1) would reach the whole host).
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parent_of = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent pid is the second field after the ")" ending the name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<libc::pid_t>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// What the loop serves besides signals and children: followed log files
/// (`--stdout`, `--stderr`) and reloads (templates). One pointer, null
/// when there is neither: a start without them checks it once per wake-up
/// and once for the poll, as it checked the followers alone before.
pub struct Extras<'a>(Option<Box<Parts<'a>>>);

struct Parts<'a> {
    followers: Followers,
    reload: Option<Box<Reloader<'a>>>,
}

impl Parts<'_> {
    /// Out of line: the loop of a start without followers or reloads
    /// keeps only the check for them.
    #[inline(never)]
    fn on_ready(&mut self, target: &mut dyn ReloadTarget) {
        self.followers.on_ready();
        if let Some(reload) = &mut self.reload {
            reload.on_ready(target);
        }
    }
}

/// The one child's lifecycle, and the calls that signal it, as a reload's
/// target.
struct Single<'a>(&'a mut Lifecycle, &'a mut Linux);

impl ReloadTarget for Single<'_> {
    fn take_reload_request(&mut self) -> bool {
        self.0.take_reload_request()
    }
    fn may_reload(&self) -> bool {
        self.0.may_reload()
    }
    fn after_reload(&mut self, signal: i32, explicit: Option<i32>) {
        self.0.after_reload(signal, explicit, self.1)
    }
}

impl<'a> Extras<'a> {
    /// The followers and the reloads of this start.
    pub fn new(followers: Followers, reload: Option<Box<Reloader<'a>>>) -> Extras<'a> {
        match followers.active() || reload.is_some() {
            true => Extras(Some(Box::new(Parts { followers, reload }))),
            false => Extras(None),
        }
    }

    /// The signal that asks for a reload, if reloads are on (the
    /// lifecycle takes it instead of forwarding it).
    pub(crate) fn reload_signal(&self) -> Option<i32> {
        self.0
            .as_ref()
            .and_then(|p| p.reload.as_ref())
            .and_then(|r| r.signal())
    }

    /// After every wake-up: the followers copy, a reload runs if due (the
    /// one child's lifecycle is the reload's target).
    #[inline]
    fn on_ready(&mut self, lifecycle: &mut Lifecycle, os: &mut Linux) {
        if let Some(parts) = &mut self.0 {
            parts.on_ready(&mut Single(lifecycle, os));
        }
    }

    /// The same with another reload target (the table of processes).
    pub(crate) fn on_ready_for(&mut self, target: &mut dyn ReloadTarget) {
        if let Some(parts) = &mut self.0 {
            parts.on_ready(target);
        }
    }

    /// At the end: the last lines of the followed files.
    pub fn drain(&mut self) {
        if let Some(parts) = &mut self.0 {
            parts.followers.drain();
        }
    }
}

impl Wakers for Extras<'_> {
    #[inline]
    fn active(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|p| p.followers.active() || p.reload.as_ref().is_some_and(|r| r.active()))
    }

    fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize {
        let Some(parts) = &self.0 else {
            return 0;
        };
        let used = parts.followers.poll_fds(out);
        used + parts
            .reload
            .as_ref()
            .map_or(0, |r| r.poll_fds(&mut out[used..]))
    }

    fn deadline(&self) -> Option<Instant> {
        let parts = self.0.as_ref()?;
        let reload = parts.reload.as_ref().and_then(|r| r.deadline());
        match (parts.followers.deadline(), reload) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
