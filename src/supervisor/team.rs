//! The supervision of several processes (`--procfile`): the Linux side of
//! the lifecycle's table ([`Team`]). It forks each process when the table
//! says so, signals and reaps them, and tells the table what happened; it
//! decides nothing itself.
//!
//! Each process is forked with a close-on-exec report pipe: in the child,
//! its dependency wait (`--proc-wait`, the same engine as `--wait`, reading
//! its own signals from the inherited signalfd), then the user switch and
//! the exec of [`super::exec_child`]; the parent watches the pipe in its one
//! poll (an epoll instance, which also holds the `--proc-prefix` pipes):
//! its end without a byte means the exec succeeded (the process started),
//! an errno means it failed (one error line, and the process never ran).
//!
//! Promises:
//! - One poll for everything, as for one process: the signalfd, the
//!   followers' fds, the epoll fd, stdout and stderr while prefixed lines
//!   wait; deadlines for the stop order, the grace period and restarts.
//! - A process starts with the signal mask envinit was started with, in a
//!   process group of its own (set by both sides of the fork, so a signal
//!   to the group cannot come before it exists), without the terminal:
//!   Ctrl-C reaches envinit, which stops every process in order.
//! - A process stopped while it waits for its dependencies dies of the
//!   signal it was sent, as the program would have.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::{Extras, exec_child, exec_failure, null_terminated, send, set_mask, signal_all};
use crate::exit::{Failure, os_failure};
use crate::lifecycle::SuperviseSettings;
use crate::lifecycle::team::{Cause, Crew, Team};
use crate::procs::output::pipe;
use crate::procs::{Outputs, Plan, Proc};
use crate::reload::ReloadTarget;
use crate::signals::intake::{KernelSigset, SignalBuffer, Signals, Wakers};

/// Epoll tags: the kind of fd in the high half, its index in the low.
const REPORT: u64 = 1 << 32;
const OUTPUT: u64 = 2 << 32;

/// Starts every process of `plan` in order and supervises them and
/// everything they leave until all of it is gone; returns envinit's code.
/// Out of line: the one-process path in `main` stays as it was.
#[inline(never)]
pub fn run_team(
    settings: &SuperviseSettings,
    plan: &Plan,
    signals: Signals,
    extras: &mut Extras,
) -> Result<u8, Failure> {
    // As supervisor::run, without its log lines (size): orphans of the
    // processes' trees must come to envinit when it is not PID 1.
    let pid1 = nix::unistd::getpid().as_raw() == 1;
    if !pid1 {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| os_failure("epoll", e))?;
    let outputs = match plan.prefix {
        true => {
            let names: Vec<&str> = plan.procs.iter().map(|p| p.member.name.as_str()).collect();
            let outputs = Outputs::new(&names)?;
            for p in 0..outputs.len() {
                let event =
                    EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, OUTPUT | p as u64);
                epoll
                    .add(outputs.source(p), event)
                    .map_err(|e| os_failure("epoll", e))?;
            }
            Some(outputs)
        }
        false => None,
    };
    let mut crew = Linux {
        procs: &plan.procs,
        timeout: plan.wait_timeout,
        mask: signals.original_mask(),
        signals: &signals,
        epoll,
        reports: (0..plan.procs.len()).map(|_| None).collect(),
        failed: vec![false; plan.procs.len()],
        outputs,
        pid1,
    };
    let mut team = Team::new(
        settings,
        plan.procs.iter().map(|p| p.member.clone()).collect(),
    );
    team.reload_on(extras.reload_signal());
    team.begin(Instant::now(), &mut crew);
    // Whether any child is there at all (none when the first fork failed:
    // no SIGCHLD would ever come).
    let mut others_left = reap_all(&mut team, &mut crew);
    let mut received = SignalBuffer::new();
    loop {
        if let Some(code) = team.finished(others_left) {
            if let Some(outputs) = &mut crew.outputs {
                outputs.drain();
            }
            log_end(&team, code);
            return Ok(code);
        }
        let deadline = team.deadline();
        let mut got = [0; 8];
        let mut count = 0;
        let wakers = TeamWakers {
            extras,
            epoll: crew.epoll.0.as_fd(),
            outputs: crew.outputs.as_ref(),
        };
        // Taken out first: acting on them borrows what the wake-up polls.
        for signal in received.next(&signals, deadline, &wakers) {
            if let Some(slot) = got.get_mut(count) {
                *slot = signal;
                count += 1;
            }
        }
        let mut reap = false;
        for &signal in &got[..count] {
            if signal == libc::SIGCHLD {
                reap = true;
            } else {
                team.on_signal(signal, Instant::now(), &mut crew);
            }
        }
        extras.on_ready_for(&mut Several(&mut team, &mut crew));
        // Ends first: a process that failed its wait closes its report
        // pipe as it exits, which must not read as a start (the reaping
        // reads it and does not tell the table of one).
        if reap {
            others_left = reap_all(&mut team, &mut crew);
            team.after_reaping(others_left, &mut crew);
        }
        crew.events(&mut team);
        if let Some(outputs) = &mut crew.outputs {
            outputs.on_ready();
        }
        if deadline.is_some() {
            team.on_tick(Instant::now(), &mut crew);
        }
    }
}

/// The table and the calls that signal it, as a reload's target.
struct Several<'t, 'a, 'c>(&'t mut Team<'a>, &'t mut Linux<'c>);

impl ReloadTarget for Several<'_, '_, '_> {
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

/// The fds a wake-up waits for besides the signalfd.
struct TeamWakers<'a, 'x> {
    extras: &'a Extras<'x>,
    epoll: std::os::fd::BorrowedFd<'a>,
    outputs: Option<&'a Outputs>,
}

impl Wakers for TeamWakers<'_, '_> {
    fn active(&self) -> bool {
        true
    }

    fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize {
        let mut used = self.extras.poll_fds(out);
        if let Some(slot) = out.get_mut(used) {
            *slot = PollFd::new(self.epoll, PollFlags::POLLIN);
            used += 1;
        }
        if let Some(outputs) = self.outputs {
            used += outputs.poll_fds(&mut out[used..]);
        }
        used
    }

    fn deadline(&self) -> Option<Instant> {
        self.extras.deadline()
    }
}

/// Reaps every child that has changed state; tells the table about its
/// processes. Returns whether any child is left.
fn reap_all(team: &mut Team<'_>, crew: &mut Linux<'_>) -> bool {
    loop {
        let (pid, status) = match super::next_changed() {
            Ok(changed) => changed,
            Err(left) => return left,
        };
        let Some(ended) = super::ended(status) else {
            team.on_stopped(pid, libc::WIFSTOPPED(status), crew);
            continue;
        };
        let Some(i) = team.index_of(pid) else {
            continue; // an orphan
        };
        // Its report, if not read yet: an exec that failed says so there.
        crew.settle(i, team);
        let never_ran = crew.failed[i];
        tracing::info!(process = team.name(i), code = ended.code(), "process ended");
        team.on_exit(pid, ended, never_ran, Instant::now(), crew);
    }
}

/// The real [`Crew`]: fork, kill, and the report pipes.
struct Linux<'a> {
    procs: &'a [Proc<'a>],
    /// `--wait-timeout`, for each process's wait.
    timeout: std::time::Duration,
    mask: KernelSigset,
    signals: &'a Signals,
    epoll: Epoll,
    /// Each process's report pipe and pid, until its exec is known.
    reports: Vec<Option<(OwnedFd, i32)>>,
    /// Each process's last exec failed.
    failed: Vec<bool>,
    outputs: Option<Outputs>,
    pid1: bool,
}

impl Linux<'_> {
    /// Takes the events of the epoll instance: reports and output.
    fn events(&mut self, team: &mut Team<'_>) {
        let mut events = [EpollEvent::empty(); 16];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::ZERO) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            for event in &events[..n] {
                let index = (event.data() & u64::from(u32::MAX)) as usize;
                if event.data() & REPORT != 0 {
                    if let Some((true, pid)) = self.settle(index, team) {
                        team.on_started(pid, Instant::now(), self);
                    }
                } else if let Some(outputs) = &mut self.outputs {
                    outputs.ready(index);
                }
            }
            if n < events.len() {
                return;
            }
        }
    }

    /// Reads process `i`'s report pipe, if still open: `(true, pid)` at
    /// its end without a byte (the exec succeeded, or, for a process
    /// reaped now, it exited before its exec: a wait that failed),
    /// `(false, pid)` when the exec failed (one error line), `None` while
    /// neither is known.
    fn settle(&mut self, i: usize, team: &Team<'_>) -> Option<(bool, i32)> {
        let (fd, pid) = self.reports[i].as_ref()?;
        let pid = *pid;
        let mut report = [0u8; 8];
        // SAFETY: read writes at most 8 bytes into the array we own.
        let got = unsafe { libc::read(fd.as_raw_fd(), report.as_mut_ptr().cast(), report.len()) };
        let started = match Errno::result(got).map(|n| n as usize) {
            Ok(0) => true,
            Ok(n) => {
                let program = OsStr::from_bytes(self.procs[i].argv[0].as_bytes());
                let failure = exec_failure(program, &report, n);
                let problem = failure.problems.first().map_or("", String::as_str);
                process_error(team.name(i), problem);
                self.failed[i] = true;
                false
            }
            Err(Errno::EAGAIN | Errno::EINTR) => return None,
            Err(_) => true,
        };
        if let Some((fd, _)) = self.reports[i].take() {
            let _ = self.epoll.delete(&fd);
        }
        Some((started, pid))
    }
}

impl Crew for Linux<'_> {
    fn start(&mut self, index: usize) -> Option<i32> {
        let proc = &self.procs[index];
        let fail = |what: &'static str, e: Errno| {
            let name = proc.member.name.as_str();
            tracing::error!(
                process = name,
                call = what,
                error = e.desc(),
                "cannot start the process"
            );
            None
        };
        let (report_read, report_write) = match pipe() {
            Ok(pipe) => pipe,
            Err(e) => return fail("pipe", e),
        };
        let ends = self.outputs.as_ref().map(|o| o.ends(index));
        // Prepared before the fork, as for one process.
        let argv = null_terminated(&proc.argv);
        // Not Option::map: its instance stays inlined on the one-process
        // path (start-up instructions).
        #[allow(clippy::manual_map)]
        let envp = match &proc.env {
            Some(env) => Some(null_terminated(env)),
            None => None,
        };
        // SAFETY: envinit is single-threaded, so the forked child is a
        // complete copy of it: it may wait for its dependencies with
        // envinit's own code (allocations, name look-ups, log lines) before
        // it execs or `_exit`s; it never returns.
        // (The raw call: nix's wrapper stays inlined on the one-process
        // path.)
        match Errno::result(unsafe { libc::fork() }) {
            Ok(0) => start_child(
                self,
                proc,
                ends,
                &argv,
                envp.as_deref(),
                report_write.as_raw_fd(),
            ),
            Ok(pid) => {
                drop(report_write);
                // SAFETY: setpgid takes plain integers; failure (the child
                // has exec'd or exited already) is harmless.
                unsafe { libc::setpgid(pid, pid) };
                // Cannot fail for a fresh pipe (ENOMEM aside: then the start
                // is seen at the process's end, which reads the pipe).
                let event = EpollEvent::new(EpollFlags::EPOLLIN, REPORT | index as u64);
                let _ = self.epoll.add(&report_read, event);
                self.reports[index] = Some((report_read, pid));
                self.failed[index] = false;
                Some(pid)
            }
            Err(e) => fail("fork", e),
        }
    }

    fn signal(&mut self, pid: i32, signal: i32) {
        // Only ESRCH (gone already) can come from a pid of ours.
        let _ = send(pid, signal);
    }

    fn signal_all(&mut self, signal: i32) {
        signal_all(self.pid1, signal);
    }
}

/// In the forked child: its own process group, the `--proc-prefix` pipes
/// as stdout and stderr, the dependency wait, then the exec. Never
/// returns.
fn start_child(
    crew: &Linux<'_>,
    proc: &Proc,
    ends: Option<[RawFd; 2]>,
    argv: &[*const libc::c_char],
    envp: Option<&[*const libc::c_char]>,
    report_fd: RawFd,
) -> ! {
    // SAFETY: plain integers; the pipes' ends are open in envinit.
    unsafe {
        libc::setpgid(0, 0);
        if let Some([out, err]) = ends {
            libc::dup2(out, libc::STDOUT_FILENO);
            libc::dup2(err, libc::STDERR_FILENO);
        }
    }
    if !proc.waits.is_empty() {
        let own = proc.member.stop_signal.unwrap_or(0);
        if let Err(failure) =
            crate::wait::wait_for_process(proc.waits, crew.timeout, crew.signals, own)
        {
            for problem in &failure.problems {
                process_error(&proc.member.name, problem);
            }
            let signal = i32::from(failure.code) - 128;
            if signal > 0 {
                die_of(signal);
            }
            // SAFETY: ends the forked child without running anything of
            // envinit's (no destructors, no buffers of the parent's).
            unsafe { libc::_exit(failure.code.into()) };
        }
    }
    exec_child(argv, envp, proc.user.as_ref(), &crew.mask, false, report_fd)
}

/// Ends the forked child by `signal`, as the program it was to become
/// would have died of it (its default action), else exits 128+N.
fn die_of(signal: i32) -> ! {
    let one = KernelSigset(1u64 << (signal - 1));
    // SAFETY: plain integers and a mask we own; the child ends here. Not
    // dumpable: SIGQUIT's default action must not leave a core dump of it.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::signal(signal, libc::SIG_DFL);
        libc::kill(libc::getpid(), signal);
        let _ = set_mask(libc::SIG_UNBLOCK, &one, None);
        libc::_exit(128 + signal)
    }
}

/// One line at the end: the code, and the process that ended first (`-`
/// after a stop signal).
fn log_end(team: &Team<'_>, code: u8) {
    let first = match team.cause() {
        Some(Cause::Ended(i)) => team.name(i),
        _ => "-",
    };
    tracing::info!(code, first, "every process ended");
}

/// One error line about one process (one event for every such line).
#[cold]
#[inline(never)]
fn process_error(process: &str, problem: &str) {
    tracing::error!(process, "{problem}");
}
