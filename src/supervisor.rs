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
//!   it holds a rotated file, joins the lifecycle's): no polling.
//! - The child starts with the signal mask envinit was started with, default
//!   dispositions for everything envinit did not inherit as ignored, and no
//!   file descriptor envinit opened (they are all close-on-exec); the ones
//!   envinit inherited pass through, as through exec.
//! - Once the child runs, nothing ends the loop but the end of the child and
//!   of everything left to reap: unexpected errors are logged and the loop
//!   carries on.
//! - A pid is signalled only while it is ours (not yet reaped); "no such
//!   process" (ESRCH) means already gone.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{self, ForkResult, Pid};

use crate::exit;
use crate::follow::Followers;
use crate::launch::Launch;
use crate::lifecycle::{ChildStatus, Lifecycle, Processes, StopCause};
use crate::settings::{SuperviseSettings, format_duration};
use crate::signals;

/// Why the child could not be started, with the exit code it earns.
#[derive(Debug)]
pub struct SpawnError {
    /// 127 not found, 126 not executable, 71 any other OS failure.
    pub code: u8,
    /// One line: what failed and how to fix it.
    pub message: String,
}

/// Signals raised by faults in envinit itself: left unblocked so a real
/// fault is fatal at once instead of leaving a wedged PID 1.
const SYNCHRONOUS: [i32; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// A signal mask as the kernel sees it: bit N-1 for signal N, 1-64.
///
/// Built by hand and applied with the raw `rt_sigprocmask`/`signalfd4`
/// calls, because musl's `sigfillset`/`sigaddset` leave out 32-34 (the
/// signals it reserves for itself): with them, `kill -s RTMIN` (34) and 32,
/// 33 would be neither blocked nor read, and PID 1 would drop them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSigset(pub u64);

impl KernelSigset {
    /// Every signal envinit takes: 1-64 but SIGKILL, SIGSTOP (which cannot
    /// be caught) and the fault signals.
    pub fn taken() -> KernelSigset {
        let mut bits = u64::MAX;
        for signal in SYNCHRONOUS
            .into_iter()
            .chain([libc::SIGKILL, libc::SIGSTOP])
        {
            bits &= !(1u64 << (signal - 1));
        }
        KernelSigset(bits)
    }

    /// Whether `signal` is in the set.
    pub fn contains(self, signal: i32) -> bool {
        (1..=64).contains(&signal) && self.0 & (1u64 << (signal - 1)) != 0
    }
}

/// The kernel's sigset size in bytes (`_NSIG / 8` on Linux).
const SIGSET_BYTES: usize = 8;

/// `rt_sigprocmask(how, set, old)` on a [`KernelSigset`]; async-signal-safe.
fn set_mask(
    how: libc::c_int,
    set: &KernelSigset,
    old: Option<&mut KernelSigset>,
) -> Result<(), Errno> {
    let old = old.map_or(std::ptr::null_mut(), |o| std::ptr::from_mut(&mut o.0));
    // SAFETY: the kernel reads 8 bytes at `set` and writes 8 at `old` when it
    // is not null; both point to u64s we own for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            how,
            std::ptr::from_ref(&set.0),
            old,
            SIGSET_BYTES,
        )
    };
    Errno::result(rc).map(drop)
}

/// Every signal envinit takes, blocked and readable from one signalfd, and
/// the mask envinit was started with (which the child gets back, exactly).
pub struct Signals {
    fd: OwnedFd,
    original: KernelSigset,
}

/// Blocks every signal but SIGKILL, SIGSTOP and the fault signals, and
/// opens the signalfd that receives them. Called before rendering, so that
/// a stop signal arriving while config is written is held and forwarded to
/// the child, not lost (PID 1 ignores signals it has no handler for).
pub fn take_signals() -> Result<Signals, SpawnError> {
    let taken = KernelSigset::taken();
    let mut original = KernelSigset(0);
    set_mask(libc::SIG_BLOCK, &taken, Some(&mut original))
        .map_err(|e| os_error("blocking signals", e))?;
    // SAFETY: signalfd4 reads 8 bytes of the mask we own; the fd it returns
    // is new and ours alone.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            std::ptr::from_ref(&taken.0),
            SIGSET_BYTES,
            libc::SFD_CLOEXEC,
        )
    };
    let fd = Errno::result(fd).map_err(|e| os_error("signalfd", e))?;
    // SAFETY: a fresh descriptor from signalfd4, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok(Signals { fd, original })
}

impl Signals {
    /// The signalfd, for a phase before the spawn that must wake on a
    /// signal (the wait for dependencies).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Before the spawn only: reads the pending signals (without blocking)
    /// and returns the first stop signal among them. The others are
    /// dropped, as there is no child yet to forward them to.
    pub fn stop_before_spawn(&self) -> Option<i32> {
        let mut buffer = SignalBuffer::new();
        // A deadline of now: a poll that does not wait, then one read.
        let mut signals = buffer.next(&self.fd, Some(Instant::now()), &Followers::none());
        signals.find(|s| crate::lifecycle::is_stop_signal(*s))
    }
}

/// A failed system call before the child runs: exit 71.
fn os_error(what: &str, e: Errno) -> SpawnError {
    SpawnError {
        code: exit::OS_ERROR,
        message: format!("{what} failed: {}", e.desc()),
    }
}

/// Spawns `command` and supervises it and everything it leaves behind until
/// all of it is gone; returns how the main child ended.
pub fn run(
    settings: &SuperviseSettings,
    command: &[OsString],
    launch: &Launch,
    signals: Signals,
    followers: &mut Followers,
) -> Result<ChildStatus, SpawnError> {
    let Signals {
        fd: signalfd,
        original,
    } = signals;
    let pid1 = unistd::getpid() == Pid::from_raw(1);
    if !pid1 {
        // Orphans of the child's tree must come to us, not to the host's init.
        match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => tracing::debug!("not PID 1: became a child subreaper"),
            Err(e) => {
                tracing::warn!(
                    error = e.desc(),
                    "not PID 1 and cannot become a subreaper: orphans go to the host's init"
                )
            }
        }
    }

    tracing::debug!(
        grace = format_duration(settings.grace).as_str(),
        pre_stop_delay = format_duration(settings.pre_stop_delay).as_str(),
        signal_group = settings.signal_group,
        rewrites = settings.rewrites.len(),
        pid1,
        "supervising"
    );
    let child = spawn(command, launch, original)?;
    tracing::info!(pid = child.as_raw(), "child started");

    let mut os = Linux { child, pid1 };
    let mut lifecycle = Lifecycle::new(settings);
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
        for signal in received.next(&signalfd, deadline, followers) {
            if signal == libc::SIGCHLD {
                reap = true;
            } else {
                lifecycle.on_signal(signal, Instant::now(), &mut os);
            }
        }
        followers.on_ready();
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

/// Signals read from the signalfd, several per read.
struct SignalBuffer {
    records: [libc::signalfd_siginfo; SignalBuffer::RECORDS],
    len: usize,
}

impl SignalBuffer {
    /// Records taken per read: a burst of signals is one wake-up.
    const RECORDS: usize = 8;

    fn new() -> SignalBuffer {
        SignalBuffer {
            // SAFETY: signalfd_siginfo is plain integers; all zeroes is valid.
            records: unsafe { std::mem::zeroed() },
            len: 0,
        }
    }

    /// Waits for signals (or `deadline`, or the log followers' fds) and
    /// returns their numbers; empty when the wake-up was for something
    /// else. Without a deadline or followers this is one blocking read;
    /// with either, a poll first. Inlined: it is the heart of the wake-up
    /// path (bench/run, "instr/reap").
    #[inline(always)]
    fn next(
        &mut self,
        fd: &OwnedFd,
        deadline: Option<Instant>,
        followers: &Followers,
    ) -> impl Iterator<Item = i32> + '_ {
        self.len = 0;
        let blocking_read = deadline.is_none() && !followers.is_active();
        if blocking_read || readable_before(fd, deadline, followers) {
            let size = std::mem::size_of_val(&self.records);
            // SAFETY: the kernel writes at most `size` bytes into the array
            // we own; signalfd writes whole records only.
            let read = unsafe {
                raw::syscall4(
                    libc::SYS_read,
                    fd.as_raw_fd() as usize,
                    self.records.as_mut_ptr() as usize,
                    size,
                    0,
                )
            };
            match read {
                Ok(bytes) => self.len = bytes / std::mem::size_of::<libc::signalfd_siginfo>(),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => tracing::warn!(error = e.desc(), "reading signals failed; carrying on"),
            }
        }
        self.records[..self.len]
            .iter()
            .map(|r| i32::try_from(r.ssi_signo).unwrap_or(0))
    }
}

/// Polls `fd` and the log followers' fds until `fd` is readable (true), or
/// `deadline` (or the followers' own, while they hold a rotated file)
/// passes or a follower's fd is ready (false).
#[inline(never)]
fn readable_before(fd: &OwnedFd, deadline: Option<Instant>, followers: &Followers) -> bool {
    let deadline = match (deadline, followers.deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            // Round up so the wake-up is never before the deadline.
            let left = at.saturating_duration_since(Instant::now());
            let millis = left.as_micros().div_ceil(1000);
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
        }
    };
    let signal = PollFd::new(fd.as_fd(), PollFlags::POLLIN);
    let mut fds = [signal.clone(), signal.clone(), signal.clone(), signal];
    let used = 1 + followers.poll_fds(&mut fds[1..]);
    match poll(&mut fds[..used], timeout) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN)),
        Err(Errno::EINTR) => false,
        Err(e) => {
            tracing::warn!(error = e.desc(), "poll failed; carrying on");
            false
        }
    }
}

/// The system calls of the wake-up path (the signalfd read, wait4), made
/// directly: musl's wrappers are cancellation points that cost more
/// user-space instructions than the rest of a wake-up, which runs once per
/// reaped orphan (bench/run, "instructions per reap").
mod raw {
    use nix::errno::Errno;
    use nix::libc;

    /// A system call with up to four arguments (unused ones are 0); a
    /// negative result is the errno.
    ///
    /// # Safety
    /// The arguments must be valid for `nr` (pointers to memory the caller
    /// owns, of the sizes the call expects).
    #[inline(always)]
    pub unsafe fn syscall4(
        nr: libc::c_long,
        a: usize,
        b: usize,
        c: usize,
        d: usize,
    ) -> Result<usize, Errno> {
        let ret: isize;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the x86_64 Linux system call convention: number in rax,
        // arguments in rdi, rsi, rdx, r10; the kernel clobbers rcx and r11.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the aarch64 Linux system call convention: number in x8,
        // arguments in x0-x3, the result in x0.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a as isize => ret,
                in("x1") b,
                in("x2") c,
                in("x3") d,
                options(nostack),
            );
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        // SAFETY: as the caller promised; the C library's generic wrapper.
        unsafe {
            ret = match libc::syscall(nr, a, b, c, d) {
                -1 => -(Errno::last_raw() as isize),
                r => r as isize,
            };
        }
        if (-4095..0).contains(&ret) {
            Err(Errno::from_raw(-ret as i32))
        } else {
            Ok(ret as usize)
        }
    }
}

/// Reaps every child that has changed state, in one batch; tells the
/// lifecycle about the main child. Returns whether any child is left.
fn reap_all(child: Pid, lifecycle: &mut Lifecycle, os: &mut Linux) -> bool {
    let mut reaped = 0u32;
    let left = loop {
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
        let pid = match waited {
            Ok(0) => break true,
            Ok(pid) => pid as libc::pid_t,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break false,
            Err(e) => {
                tracing::warn!(error = e.desc(), "waitpid failed; carrying on");
                break true;
            }
        };
        let exited = if libc::WIFEXITED(status) {
            Some(ChildStatus::Exited(
                u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(u8::MAX),
            ))
        } else if libc::WIFSIGNALED(status) {
            Some(ChildStatus::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        };
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
) -> Result<Pid, SpawnError> {
    let Some(program) = command.first() else {
        return Err(SpawnError {
            code: exit::USAGE,
            message: "no command given".into(),
        });
    };
    // Words from argv cannot hold a NUL byte; this guards the library API.
    let argv: Vec<CString> = command
        .iter()
        .map(|word| CString::new(word.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| SpawnError {
            code: exit::USAGE,
            message: "an argument of the command holds a NUL byte".into(),
        })?;
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // Only with --user or --export-file-var: the child's own environment.
    let envp: Option<Vec<*const libc::c_char>> = launch.env.as_ref().map(|env| {
        let mut envp: Vec<_> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        envp
    });
    let ids = launch.identity.as_ref().filter(|_| launch.switch);
    let os_error = |what: &str, e: Errno| {
        os_error(
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
            &pointers,
            envp.as_deref(),
            ids,
            &original_mask,
            take_terminal,
            report_write.as_raw_fd(),
        ),
        Ok(ForkResult::Parent { child }) => {
            drop(report_write);
            // errno, then the step that failed (0: the exec).
            let mut report = [0u8; 8];
            let read = loop {
                match unistd::read(&report_read, &mut report) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            match read {
                // End of file: the exec succeeded and closed the pipe.
                Ok(0) => Ok(child),
                Ok(n) => {
                    // The exec failed; the child has _exited: reap it now.
                    let _ = nix::sys::wait::waitpid(child, None);
                    let [e0, e1, e2, e3, s0, s1, s2, s3] = report;
                    let errno = Errno::from_raw(i32::from_ne_bytes([e0, e1, e2, e3]));
                    let step = if n == 8 {
                        i32::from_ne_bytes([s0, s1, s2, s3])
                    } else {
                        0
                    };
                    Err(match USER_STEPS.get(step as usize) {
                        Some(call) if step > 0 => SpawnError {
                            code: exit::OS_ERROR,
                            message: format!(
                                "cannot start {:?} as the --user: {call} failed: {} (envinit needs root, or CAP_SETUID and CAP_SETGID)",
                                program.to_string_lossy(),
                                errno.desc()
                            ),
                        },
                        _ => spawn_error(program, errno),
                    })
                }
                Err(e) => {
                    tracing::warn!(
                        error = e.desc(),
                        "cannot tell whether the exec succeeded; assuming it did"
                    );
                    Ok(child)
                }
            }
        }
        Err(e) => Err(os_error("fork", e)),
    }
}

/// What the forked child reports as failed: 0 the exec, then the user switch.
const USER_STEPS: [&str; 4] = ["exec", "setgroups", "setresgid", "setresuid"];

/// In the forked child: set up and exec, or report errno and `_exit(127)`.
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
        let errno = Errno::last_raw().to_ne_bytes();
        libc::write(report_fd, errno.as_ptr().cast(), errno.len());
        libc::_exit(exit::NOT_FOUND.into())
    }
}

/// The exec failure as the OS says it, then what it means and the fix:
/// `cannot run "x": No such file or directory (command not found: ...)`.
fn spawn_error(program: &OsString, errno: Errno) -> SpawnError {
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
    SpawnError {
        code,
        message: format!("cannot run {name:?}: {}{meaning}", errno.desc()),
    }
}

/// One line at the end: how and why the child ended.
fn log_end(status: ChildStatus, lifecycle: &Lifecycle) {
    let stop = match lifecycle.cause() {
        Some(StopCause::Signal(s)) => signals::name(s),
        _ => String::new(),
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
    match status {
        ChildStatus::Exited(_) if stop.is_empty() => tracing::info!(code, why, "child exited"),
        ChildStatus::Exited(_) => tracing::info!(code, why, stop = stop.as_str(), "child exited"),
        ChildStatus::Signaled(signal) if stop.is_empty() => tracing::info!(
            code,
            signal = signals::name(signal).as_str(),
            why,
            "child killed by a signal"
        ),
        ChildStatus::Signaled(signal) => tracing::info!(
            code,
            signal = signals::name(signal).as_str(),
            why,
            stop = stop.as_str(),
            "child killed by a signal"
        ),
    }
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
        if self.pid1 {
            // As PID 1 of a namespace, -1 means every other process in it.
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

/// Takes back the SIGPIPE the kernel queues for envinit itself when one of
/// its writes finds a pipe with no reader (EPIPE): with every signal
/// blocked it would otherwise come out of the signalfd and be forwarded to
/// the app, which would die of it.
pub fn discard_own_sigpipe() {
    let pipe = KernelSigset(1 << (libc::SIGPIPE - 1));
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: rt_sigtimedwait reads 8 bytes of the set and the zero timeout
    // we own; a null siginfo pointer is allowed. It returns at once.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigtimedwait,
            std::ptr::from_ref(&pipe.0),
            std::ptr::null_mut::<libc::siginfo_t>(),
            std::ptr::from_ref(&now),
            SIGSET_BYTES,
        )
    };
}
