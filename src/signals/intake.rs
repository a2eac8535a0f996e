//! Intake: phase 2, taking every signal envinit can take, and reading
//! them. Every signal 1-64 but SIGKILL, SIGSTOP and the fault signals is
//! blocked and read from one signalfd ([`take`]); the mask envinit started
//! with is kept, exact to the bit, for the child ([`Signals::original_mask`]);
//! [`SignalBuffer::next`] is the wake-up of the supervision loop and of the
//! wait for dependencies; [`discard_own_sigpipe`] takes back a SIGPIPE the
//! kernel queued for envinit's own write.
//!
//! Promises:
//! - Nothing is lost between the start and the spawn: signals are blocked
//!   from phase 2 on and wait in the signalfd.
//! - The wake-up is lean (it runs once per reaped orphan): one blocking
//!   read when nothing else is awaited, a poll only with a deadline or
//!   other fds, the raw system calls of [`raw`], no allocation.
//! - Together with `supervisor`, the only module making signal calls.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::exit::{Failure, os_failure};

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
pub fn set_mask(
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
pub fn take() -> Result<Signals, Failure> {
    let taken = KernelSigset::taken();
    let mut original = KernelSigset(0);
    set_mask(libc::SIG_BLOCK, &taken, Some(&mut original))
        .map_err(|e| os_failure("blocking signals", e))?;
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
    let fd = Errno::result(fd).map_err(|e| os_failure("signalfd", e))?;
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

    /// The signal mask envinit was started with, which the child gets back.
    pub fn original_mask(&self) -> KernelSigset {
        self.original
    }

    /// Before the spawn only: reads the pending signals (without blocking)
    /// and returns the first stop signal among them (or `also`, a
    /// process's own stop signal; 0 for none). The others are dropped, as
    /// there is no child yet to forward them to.
    pub fn stop_before_spawn(&self, also: i32) -> Option<i32> {
        let mut buffer = SignalBuffer::new();
        // A deadline of now: a poll that does not wait, then one read.
        let mut signals = buffer.next(self, Some(Instant::now()), &NoWakers);
        signals.find(|s| super::is_stop(*s) || *s == also)
    }
}

/// Signals read from the signalfd, several per read.
pub struct SignalBuffer {
    records: [libc::signalfd_siginfo; SignalBuffer::RECORDS],
    len: usize,
}

impl SignalBuffer {
    /// Records taken per read: a burst of signals is one wake-up.
    const RECORDS: usize = 8;

    /// An empty buffer.
    pub fn new() -> SignalBuffer {
        SignalBuffer {
            // SAFETY: signalfd_siginfo is plain integers; all zeroes is valid.
            records: unsafe { std::mem::zeroed() },
            len: 0,
        }
    }

    /// Waits for signals (or `deadline`, or one of `wakers`' fds) and
    /// returns their numbers; empty when the wake-up was for something
    /// else. Without a deadline or wakers this is one blocking read; with
    /// either, a poll first. Inlined: it is the heart of the wake-up path
    /// (bench/run, "instr/reap").
    #[inline(always)]
    pub fn next(
        &mut self,
        signals: &Signals,
        deadline: Option<Instant>,
        wakers: &impl Wakers,
    ) -> impl Iterator<Item = i32> + '_ {
        self.len = 0;
        let fd = &signals.fd;
        let blocking_read = deadline.is_none() && !wakers.active();
        if blocking_read || readable_before(fd, deadline, wakers) {
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
                Err(e) => {
                    crate::logging::warn_error("reading signals failed; carrying on", e.desc())
                }
            }
        }
        self.records[..self.len]
            .iter()
            .map(|r| i32::try_from(r.ssi_signo).unwrap_or(0))
    }
}

impl Default for SignalBuffer {
    fn default() -> Self {
        SignalBuffer::new()
    }
}

/// Other fds a wake-up waits for besides the signalfd: the log followers'
/// (inotify, and stdout/stderr while lines wait for them) and the reloads'
/// (`--watch`'s inotify).
pub trait Wakers {
    /// Whether there are any (without them, a wake-up is one blocking read).
    fn active(&self) -> bool;
    /// Writes the fds to poll to the front of `out` (room for
    /// [`MAX_WAKERS`]); returns how many.
    fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize;
    /// When the poll must return at the latest for them (a rotated log file
    /// to let go, a reload due), if ever.
    fn deadline(&self) -> Option<Instant>;
}

/// The most fds [`Wakers`] add to a wake-up's poll: the followers'
/// inotify, stdout and stderr, the reloads' inotify (`--watch`), and the
/// processes' (`--procfile`) epoll, stdout and stderr.
pub const MAX_WAKERS: usize = 7;

/// No other fd to wait for.
pub struct NoWakers;

impl Wakers for NoWakers {
    fn active(&self) -> bool {
        false
    }
    fn poll_fds<'a>(&'a self, _: &mut [PollFd<'a>]) -> usize {
        0
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// Polls `fd` and the wakers' fds until `fd` is readable (true), or
/// `deadline` (or the wakers' own) passes or a waker's fd is ready (false).
#[inline(never)]
fn readable_before(fd: &OwnedFd, deadline: Option<Instant>, wakers: &dyn Wakers) -> bool {
    let deadline = match (deadline, wakers.deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            // Round up so the wake-up is never before the deadline.
            let left = at.saturating_duration_since(Instant::now());
            let millis = crate::options::ceil_millis(left);
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
        }
    };
    let signal = PollFd::new(fd.as_fd(), PollFlags::POLLIN);
    let mut fds: [PollFd; 1 + MAX_WAKERS] = std::array::from_fn(|_| signal.clone());
    let used = 1 + wakers.poll_fds(&mut fds[1..]);
    match poll(&mut fds[..used], timeout) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLIN)),
        Err(Errno::EINTR) => false,
        Err(e) => {
            crate::logging::warn_error("poll failed; carrying on", e.desc());
            false
        }
    }
}

/// The system calls of the wake-up path (the signalfd read, wait4), made
/// directly: musl's wrappers are cancellation points that cost more
/// user-space instructions than the rest of a wake-up, which runs once per
/// reaped orphan (bench/run, "instructions per reap").
pub mod raw {
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
