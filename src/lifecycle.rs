//! Lifecycle: what PID 1 decides on each event (a signal arrives, the main
//! child stops, exits, or a deadline passes), free of system calls so that
//! the shutdown logic can be unit-tested without real processes.
//!
//! The supervisor feeds events in; the decisions come out as calls on a
//! [`Processes`] implementation (the real one sends signals; tests record).
//!
//! Theory of operation:
//! - Every received signal is rewritten (`--rewrite`) and forwarded to the
//!   main child, or to its process group with `--signal-group`; but the
//!   reload signal, with templates, asks for a reload instead (src/reload.rs
//!   renders; the app then gets its reload signal from
//!   [`Lifecycle::after_reload`] if a file changed).
//! - A stop signal (SIGTERM, SIGINT, SIGQUIT as received) is held for the
//!   pre-stop delay (a second stop signal cuts the delay short), then
//!   forwarded, and the grace period starts. A child seen stopped (Ctrl-Z,
//!   SIGSTOP) gets SIGCONT right after, so it can act on the stop signal.
//! - When the main child is gone but other processes remain, they get
//!   SIGTERM (and SIGCONT), within the grace period (started now if no stop
//!   signal started it before).
//! - When the grace period ends, everything left gets SIGKILL.
//! - In VM mode the kernel turns Ctrl-Alt-Del into SIGINT to PID 1: it is
//!   a stop, handled as if the image's StopSignal (else SIGTERM) had been
//!   received, the way `docker stop` sends it; `--rewrite` then applies.
//! - envinit is done when the main child is gone and nothing is left to reap;
//!   it never waits longer than it must.

use std::time::{Duration, Instant};

use nix::libc;

use crate::exit::Failure;
use crate::options::{Given, format_duration, parse_bool, parse_duration};
use crate::signals;

pub mod team;

/// How the child is run and stopped: the supervision options
/// (docs/options.md, "Supervision").
#[derive(Debug, Clone, PartialEq)]
pub struct SuperviseSettings {
    /// How long the whole tree gets to exit after a stop signal (or after
    /// the main child exits with orphans left) before SIGKILL.
    pub grace: Duration,
    /// How long to hold the first stop signal before forwarding it.
    pub pre_stop_delay: Duration,
    /// Forward signals to the child's whole process group.
    pub signal_group: bool,
    /// Signal rewrites: received signal to forwarded signal (`None` drops it).
    pub rewrites: Vec<(i32, Option<i32>)>,
    /// VM mode: the kernel turns Ctrl-Alt-Del into SIGINT to PID 1; it is
    /// then a stop request handled as this signal (the image's StopSignal,
    /// else SIGTERM), as `docker stop` would send it. `None` outside VMs.
    pub ctrl_alt_del: Option<i32>,
}

impl Default for SuperviseSettings {
    fn default() -> Self {
        SuperviseSettings {
            grace: Duration::from_secs(8),
            pre_stop_delay: Duration::ZERO,
            signal_group: false,
            rewrites: Vec::new(),
            ctrl_alt_del: None,
        }
    }
}

impl SuperviseSettings {
    /// `--grace`, `--pre-stop-delay`, `--signal-group`, `--rewrite`.
    pub fn from_options(given: &mut Given) -> Result<SuperviseSettings, Failure> {
        let mut s = SuperviseSettings::default();
        if let Some(r) = given.take("grace") {
            s.grace = r.parse_last(parse_duration)?.unwrap_or(s.grace);
        }
        if let Some(r) = given.take("pre-stop-delay") {
            s.pre_stop_delay = r.parse_last(parse_duration)?.unwrap_or_default();
        }
        if let Some(r) = given.take("signal-group") {
            s.signal_group = r.parse_last(parse_bool)?.unwrap_or(false);
        }
        if let Some(r) = given.take("rewrite") {
            s.rewrites = r.parse_each(parse_rewrite)?;
        }
        Ok(s)
    }

    /// VM mode's rule: Ctrl-Alt-Del (SIGINT from the kernel) is a stop
    /// handled as the image's StopSignal, else SIGTERM; SIGTERM becomes the
    /// StopSignal too (after the user's own `--rewrite`s, which win).
    pub fn for_vm(&mut self, stop_signal: Option<i32>) {
        let stop = stop_signal.unwrap_or(libc::SIGTERM);
        self.ctrl_alt_del = Some(stop);
        if stop != libc::SIGTERM {
            self.rewrites.push((libc::SIGTERM, Some(stop)));
        }
    }
}

/// Parses `FROM:TO` where TO may be `none`.
pub fn parse_rewrite(text: &str) -> Result<(i32, Option<i32>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not FROM:TO (e.g. TERM:QUIT, or TERM:none to drop)"))?;
    let from = signals::parse(from)?;
    let to = if to.trim().eq_ignore_ascii_case("none") {
        None
    } else {
        Some(signals::parse(to)?)
    };
    Ok((from, to))
}

/// A received signal as the lifecycle takes it: `(received, forward,
/// stop)`, the signal as received (Ctrl-Alt-Del in VM mode taken as the
/// stop signal it stands for), what to forward after `--rewrite`, and
/// whether it is a stop; `None` when `--rewrite` drops it.
fn incoming(
    received: i32,
    ctrl_alt_del: Option<i32>,
    rewrites: &[(i32, Option<i32>)],
) -> Option<(i32, i32, bool)> {
    let (received, stop) = match ctrl_alt_del {
        Some(as_signal) if received == libc::SIGINT => (as_signal, true),
        _ => (received, signals::is_stop(received)),
    };
    let forward = match rewrites.iter().find(|(from, _)| *from == received) {
        Some((_, to)) => *to,
        None => Some(received),
    };
    let Some(forward) = forward else {
        tracing::debug!(signal = %signals::name(received), "signal dropped (--rewrite)");
        return None;
    };
    if forward != received {
        tracing::debug!(
            received = %signals::name(received),
            forwarded = %signals::name(forward),
            "signal rewritten (--rewrite)"
        );
    }
    Some((received, forward, stop))
}

/// The signal calls the lifecycle makes. Implementations ignore "no such
/// process": a target that is gone already needs no signal.
pub trait Processes {
    /// Sends `signal` to the main child (with `group`, to its process group).
    fn signal_child(&mut self, signal: i32, group: bool);
    /// Sends `signal` to every process envinit would reap (all processes of
    /// the PID namespace as PID 1; all descendants as a subreaper).
    fn signal_all(&mut self, signal: i32);
}

/// How the main child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    /// It exited with this code.
    Exited(u8),
    /// It was killed by this signal.
    Signaled(i32),
}

impl ChildStatus {
    /// The exit code a shell would report: the code, or 128+N.
    pub fn code(self) -> u8 {
        match self {
            ChildStatus::Exited(code) => code,
            ChildStatus::Signaled(signal) => {
                u8::try_from(128 + signal.clamp(0, 127)).unwrap_or(u8::MAX)
            }
        }
    }
}

/// Why envinit is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// A stop signal arrived (the signal as received).
    Signal(i32),
    /// The main child exited while other processes remained.
    ChildExited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forwarding signals; nothing is shutting down.
    Running,
    /// A stop signal is held until `until`, then `signal` is forwarded.
    PreStop { until: Instant, signal: i32 },
    /// Everything must be gone by `kill_at`.
    Draining { kill_at: Instant },
    /// SIGKILL was sent; waiting for the last processes to be reaped.
    Killed,
}

/// The state of one supervision, from spawn to exit.
#[derive(Debug)]
pub struct Lifecycle {
    grace: Duration,
    pre_stop_delay: Duration,
    group: bool,
    rewrites: Vec<(i32, Option<i32>)>,
    ctrl_alt_del: Option<i32>,
    phase: Phase,
    /// The main child's end, once it has been reaped.
    status: Option<ChildStatus>,
    /// The main child is stopped (SIGTSTP, SIGSTOP, SIGTTIN, SIGTTOU).
    child_stopped: bool,
    cause: Option<StopCause>,
    /// The processes left after the main child were told to stop.
    others_told: bool,
    /// The signal that asks for a reload instead of being forwarded.
    reload_on: Option<i32>,
    /// It arrived since the reloads last looked.
    reload_asked: bool,
}

impl Lifecycle {
    /// A lifecycle for a freshly spawned main child.
    pub fn new(settings: &SuperviseSettings) -> Lifecycle {
        Lifecycle {
            grace: settings.grace,
            pre_stop_delay: settings.pre_stop_delay,
            group: settings.signal_group,
            rewrites: settings.rewrites.clone(),
            ctrl_alt_del: settings.ctrl_alt_del,
            phase: Phase::Running,
            status: None,
            child_stopped: false,
            cause: None,
            others_told: false,
            reload_on: None,
            reload_asked: false,
        }
    }

    /// A signal (other than SIGCHLD) was received.
    pub fn on_signal(&mut self, received: i32, now: Instant, os: &mut impl Processes) {
        if self.reload_on == Some(received) {
            self.reload_asked = true;
            return;
        }
        let Some((received, forward, stop)) = incoming(received, self.ctrl_alt_del, &self.rewrites)
        else {
            return;
        };
        if !stop {
            self.forward(forward, false, os);
            return;
        }
        if self.phase == Phase::Running {
            self.log_stop(received, forward);
        }
        match self.phase {
            Phase::Running if !self.pre_stop_delay.is_zero() => {
                tracing::info!(
                    delay = format_duration(self.pre_stop_delay).as_str(),
                    "stop signal held for the pre-stop delay"
                );
                self.cause = Some(StopCause::Signal(received));
                self.phase = Phase::PreStop {
                    until: now + self.pre_stop_delay,
                    signal: forward,
                };
            }
            Phase::Running | Phase::PreStop { .. } => {
                self.cause.get_or_insert(StopCause::Signal(received));
                self.forward(forward, true, os);
                self.phase = Phase::Draining {
                    kill_at: now + self.grace,
                };
            }
            Phase::Draining { .. } | Phase::Killed => self.forward(forward, true, os),
        }
    }

    /// The info line for the first stop signal: what arrived, what the
    /// child gets, and how long the grace period is.
    fn log_stop(&self, received: i32, forward: i32) {
        let grace = format_duration(self.grace);
        let rewritten = (forward != received).then(|| signals::name(forward));
        let how = if rewritten.is_some() {
            " rewritten"
        } else {
            ""
        };
        tracing::info!(
            signal = %signals::name(received),
            forwarded = rewritten.as_deref(),
            grace = grace.as_str(),
            "stop signal received: forwarding it{how}; everything left is killed when the grace period ends"
        );
    }

    /// Forwards to the main child; with `wake` (a stop), a child seen
    /// stopped gets SIGCONT right after, as it could not act on it otherwise.
    fn forward(&mut self, signal: i32, wake: bool, os: &mut impl Processes) {
        if self.status.is_some() {
            return; // the main child is reaped: its pid is no longer ours
        }
        tracing::debug!(signal = %signals::name(signal), group = self.group, "forwarding");
        os.signal_child(signal, self.group);
        if wake && self.child_stopped && signal != libc::SIGCONT {
            os.signal_child(libc::SIGCONT, self.group);
        }
    }

    /// The main child was stopped (`true`) or continued (`false`).
    pub fn on_child_stopped(&mut self, stopped: bool, os: &mut impl Processes) {
        self.child_stopped = stopped;
        if stopped {
            tracing::info!("child stopped (job control); a stop signal will continue it");
            if matches!(self.phase, Phase::Draining { .. }) {
                // Stopped while shutting down: it could never act on the stop.
                os.signal_child(libc::SIGCONT, self.group);
            }
        }
    }

    /// The main child was reaped with `status`.
    pub fn on_child_exit(&mut self, status: ChildStatus) {
        self.status = Some(status);
        self.child_stopped = false;
    }

    /// After a round of reaping: `others_left` tells whether any process is
    /// still there to reap. When the main child is gone and others remain,
    /// they get SIGTERM and SIGCONT, once, within the grace period of a stop
    /// in progress, or of one that starts now.
    pub fn after_reaping(&mut self, others_left: bool, now: Instant, os: &mut impl Processes) {
        if self.status.is_none() || !others_left || self.others_told || self.phase == Phase::Killed
        {
            return;
        }
        tracing::info!(
            grace = format_duration(self.grace).as_str(),
            "main child gone: sending SIGTERM to the processes it left"
        );
        self.others_told = true;
        os.signal_all(libc::SIGTERM);
        os.signal_all(libc::SIGCONT);
        if matches!(self.phase, Phase::Running | Phase::PreStop { .. }) {
            self.cause.get_or_insert(StopCause::ChildExited);
            self.phase = Phase::Draining {
                kill_at: now + self.grace,
            };
        }
    }

    /// Reloads (src/reload.rs): `signal` asks for one instead of being
    /// forwarded (`None`: every signal is forwarded, as without templates).
    pub fn reload_on(&mut self, signal: Option<i32>) {
        self.reload_on = signal;
    }

    /// Whether the reload signal arrived since the last call (which clears
    /// it).
    pub fn take_reload_request(&mut self) -> bool {
        std::mem::take(&mut self.reload_asked)
    }

    /// Whether a reload (src/reload.rs) may run now: the app runs and no
    /// stop has begun (a stop signal held for the pre-stop delay included).
    pub fn may_reload(&self) -> bool {
        self.phase == Phase::Running && self.status.is_none()
    }

    /// After a reload that changed a file's content: the app gets its
    /// reload signal: `explicit` (`--app-reload-signal`) as is (0: none),
    /// else `signal` (the reload signal) as `--rewrite` makes it, not at
    /// all if a rewrite drops it; to its process group with
    /// `--signal-group`.
    ///
    /// With several processes, this is where each named child gets its own
    /// (`--proc-reload-signal NAME=SIGNAL`).
    pub fn after_reload(&mut self, signal: i32, explicit: Option<i32>, os: &mut impl Processes) {
        let forward = match explicit {
            Some(explicit) => Some(explicit),
            None => match self.rewrites.iter().find(|(from, _)| *from == signal) {
                Some((_, to)) => *to,
                None => Some(signal),
            },
        };
        if let Some(forward) = forward.filter(|s| *s != 0) {
            self.forward(forward, false, os);
        }
    }

    /// True once the main child has been reaped.
    #[inline]
    pub fn child_gone(&self) -> bool {
        self.status.is_some()
    }

    /// When the supervisor must wake up even without a signal.
    #[inline]
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::PreStop { until, .. } => Some(until),
            Phase::Draining { kill_at } => Some(kill_at),
            Phase::Running | Phase::Killed => None,
        }
    }

    /// Acts on a deadline that has passed by `now`.
    pub fn on_tick(&mut self, now: Instant, os: &mut impl Processes) {
        match self.phase {
            Phase::PreStop { until, signal } if now >= until => {
                self.forward(signal, true, os);
                self.phase = Phase::Draining {
                    kill_at: now + self.grace,
                };
            }
            Phase::Draining { kill_at } if now >= kill_at => {
                log_grace_over(self.grace);
                os.signal_all(libc::SIGKILL);
                self.phase = Phase::Killed;
            }
            _ => {}
        }
    }

    /// The main child's end, once it is gone and nothing is left to reap.
    #[inline]
    pub fn finished(&self, others_left: bool) -> Option<ChildStatus> {
        if others_left { None } else { self.status }
    }

    /// Why the shutdown began, if it did.
    pub fn cause(&self) -> Option<StopCause> {
        self.cause
    }

    /// True once SIGKILL was sent to whatever was left.
    pub fn killed(&self) -> bool {
        self.phase == Phase::Killed
    }
}

/// The warning when the grace period ends with processes left (one event
/// for one process and for several).
#[cold]
#[inline(never)]
pub(crate) fn log_grace_over(grace: Duration) {
    tracing::warn!(
        grace = format_duration(grace).as_str(),
        "grace period over: killing every process left"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};

    /// Records every signal call, as `(target, signal)`.
    #[derive(Default)]
    struct Recorder(Vec<(&'static str, i32)>);

    impl Processes for Recorder {
        fn signal_child(&mut self, signal: i32, group: bool) {
            self.0.push((if group { "group" } else { "child" }, signal));
        }
        fn signal_all(&mut self, signal: i32) {
            self.0.push(("all", signal));
        }
    }

    fn lifecycle(f: impl FnOnce(&mut SuperviseSettings)) -> Lifecycle {
        let mut settings = SuperviseSettings::default();
        f(&mut settings);
        Lifecycle::new(&settings)
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn forwards_every_signal_to_the_child_alone_by_default() {
        let mut l = lifecycle(|_| {});
        let mut os = Recorder::default();
        let now = Instant::now();
        for s in [SIGHUP, SIGUSR1, SIGWINCH, 40] {
            l.on_signal(s, now, &mut os);
        }
        assert_eq!(
            os.0,
            vec![
                ("child", SIGHUP),
                ("child", SIGUSR1),
                ("child", SIGWINCH),
                ("child", 40)
            ]
        );
        assert_eq!(l.deadline(), None, "no stop signal: no deadline");
    }

    #[test]
    fn ctrl_alt_del_is_a_stop_as_the_stop_signal() {
        // VM mode with StopSignal SIGUSR1: SIGINT from the kernel is a stop
        // that reaches the app as SIGUSR1, then grace, then SIGKILL.
        let mut l = lifecycle(|s| {
            s.ctrl_alt_del = Some(SIGUSR1);
            s.grace = 3 * SEC;
        });
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGINT, t0, &mut os);
        assert_eq!(os.0, vec![("child", SIGUSR1)]);
        assert_eq!(l.cause(), Some(StopCause::Signal(SIGUSR1)));
        assert_eq!(l.deadline(), Some(t0 + 3 * SEC));
        l.on_tick(t0 + 3 * SEC, &mut os);
        assert_eq!(os.0.last(), Some(&("all", SIGKILL)));

        // Rewrites apply to the stop signal it became.
        let mut l = lifecycle(|s| {
            s.ctrl_alt_del = Some(SIGTERM);
            s.rewrites = vec![(SIGTERM, Some(SIGQUIT))];
        });
        let mut os = Recorder::default();
        l.on_signal(SIGINT, t0, &mut os);
        assert_eq!(os.0, vec![("child", SIGQUIT)]);
        assert!(l.deadline().is_some());

        // Outside VM mode SIGINT is forwarded as SIGINT.
        let mut l = lifecycle(|_| {});
        let mut os = Recorder::default();
        l.on_signal(SIGINT, t0, &mut os);
        assert_eq!(os.0, vec![("child", SIGINT)]);
    }

    #[test]
    fn group_mode_signals_the_group() {
        let mut l = lifecycle(|s| s.signal_group = true);
        let mut os = Recorder::default();
        l.on_signal(SIGHUP, Instant::now(), &mut os);
        assert_eq!(os.0, vec![("group", SIGHUP)]);
    }

    #[test]
    fn rewrites_and_drops() {
        let mut l = lifecycle(|s| s.rewrites = vec![(SIGTERM, Some(SIGQUIT)), (SIGUSR1, None)]);
        let mut os = Recorder::default();
        let now = Instant::now();
        l.on_signal(SIGUSR1, now, &mut os);
        assert!(os.0.is_empty(), "dropped");
        l.on_signal(SIGTERM, now, &mut os);
        assert_eq!(os.0, vec![("child", SIGQUIT)]);
        assert_eq!(
            l.deadline(),
            Some(now + Duration::from_secs(8)),
            "TERM rewritten is still a stop"
        );
    }

    #[test]
    fn stop_starts_the_grace_period_then_kills_everything() {
        let mut l = lifecycle(|s| s.grace = 2 * SEC);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGTERM, t0, &mut os);
        assert_eq!(l.deadline(), Some(t0 + 2 * SEC));
        l.on_tick(t0 + SEC, &mut os);
        assert_eq!(
            os.0,
            vec![("child", SIGTERM)],
            "nothing before the deadline"
        );
        l.on_tick(t0 + 2 * SEC, &mut os);
        assert_eq!(os.0.last(), Some(&("all", SIGKILL)));
        assert!(l.killed());
        assert_eq!(l.deadline(), None);
        l.on_child_exit(ChildStatus::Signaled(SIGKILL));
        assert_eq!(l.finished(false), Some(ChildStatus::Signaled(SIGKILL)));
    }

    #[test]
    fn exits_as_soon_as_everything_is_gone() {
        let mut l = lifecycle(|s| s.grace = 60 * SEC);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGTERM, t0, &mut os);
        l.on_child_exit(ChildStatus::Signaled(SIGTERM));
        assert_eq!(l.finished(false), Some(ChildStatus::Signaled(SIGTERM)));
        assert_eq!(l.finished(false).map(ChildStatus::code), Some(143));
    }

    #[test]
    fn a_second_stop_signal_does_not_extend_the_grace() {
        let mut l = lifecycle(|s| s.grace = 5 * SEC);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGTERM, t0, &mut os);
        l.on_signal(SIGINT, t0 + 3 * SEC, &mut os);
        assert_eq!(l.deadline(), Some(t0 + 5 * SEC));
        assert_eq!(os.0, vec![("child", SIGTERM), ("child", SIGINT)]);
    }

    #[test]
    fn pre_stop_delay_holds_the_first_stop_signal() {
        let mut l = lifecycle(|s| {
            s.pre_stop_delay = 5 * SEC;
            s.grace = 10 * SEC;
        });
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGTERM, t0, &mut os);
        assert!(os.0.is_empty(), "held");
        assert_eq!(l.deadline(), Some(t0 + 5 * SEC));
        l.on_signal(SIGHUP, t0 + SEC, &mut os);
        assert_eq!(os.0, vec![("child", SIGHUP)], "other signals still pass");
        l.on_tick(t0 + 5 * SEC, &mut os);
        assert_eq!(os.0.last(), Some(&("child", SIGTERM)));
        assert_eq!(
            l.deadline(),
            Some(t0 + 15 * SEC),
            "grace counts from the forward"
        );
    }

    #[test]
    fn a_second_stop_signal_cuts_the_pre_stop_delay_short() {
        let mut l = lifecycle(|s| s.pre_stop_delay = 30 * SEC);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGTERM, t0, &mut os);
        l.on_signal(SIGTERM, t0 + SEC, &mut os);
        assert_eq!(os.0, vec![("child", SIGTERM)]);
        assert_eq!(l.deadline(), Some(t0 + 9 * SEC));
    }

    #[test]
    fn a_stopped_child_is_continued_after_a_stop_signal() {
        let mut l = lifecycle(|_| {});
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_child_stopped(true, &mut os);
        l.on_signal(SIGHUP, t0, &mut os);
        assert_eq!(
            os.0,
            vec![("child", SIGHUP)],
            "no CONT for an ordinary signal"
        );
        l.on_signal(SIGQUIT, t0, &mut os);
        assert_eq!(os.0[1..], [("child", SIGQUIT), ("child", SIGCONT)]);
    }

    #[test]
    fn a_child_stopped_during_the_shutdown_is_continued() {
        let mut l = lifecycle(|_| {});
        let mut os = Recorder::default();
        l.on_signal(SIGTERM, Instant::now(), &mut os);
        l.on_child_stopped(true, &mut os);
        assert_eq!(os.0, vec![("child", SIGTERM), ("child", SIGCONT)]);
    }

    #[test]
    fn orphans_left_by_the_main_child_get_term_then_kill() {
        let mut l = lifecycle(|s| s.grace = 3 * SEC);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_child_exit(ChildStatus::Exited(3));
        l.after_reaping(true, t0, &mut os);
        assert_eq!(os.0, vec![("all", SIGTERM), ("all", SIGCONT)]);
        assert_eq!(l.cause(), Some(StopCause::ChildExited));
        l.after_reaping(true, t0 + SEC, &mut os);
        assert_eq!(os.0.len(), 2, "told once");
        assert_eq!(l.finished(true), None, "waits for the orphans");
        l.on_tick(t0 + 3 * SEC, &mut os);
        assert_eq!(os.0.last(), Some(&("all", SIGKILL)));
        assert_eq!(
            l.finished(false),
            Some(ChildStatus::Exited(3)),
            "the main child's code"
        );
    }

    #[test]
    fn orphans_during_a_stop_keep_the_stops_deadline() {
        let mut l = lifecycle(|s| s.grace = 4 * SEC);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        l.on_signal(SIGTERM, t0, &mut os);
        l.on_child_exit(ChildStatus::Exited(0));
        l.after_reaping(true, t0 + SEC, &mut os);
        assert_eq!(
            os.0,
            vec![("child", SIGTERM), ("all", SIGTERM), ("all", SIGCONT)]
        );
        assert_eq!(l.deadline(), Some(t0 + 4 * SEC));
        l.on_signal(SIGTERM, t0 + 2 * SEC, &mut os);
        assert_eq!(os.0.len(), 3, "the reaped child's pid is not signalled");
    }

    #[test]
    fn no_orphans_no_cleanup() {
        let mut l = lifecycle(|_| {});
        let mut os = Recorder::default();
        l.on_child_exit(ChildStatus::Exited(0));
        l.after_reaping(false, Instant::now(), &mut os);
        assert!(os.0.is_empty());
        assert_eq!(l.finished(false), Some(ChildStatus::Exited(0)));
        assert_eq!(l.cause(), None);
    }

    #[test]
    fn the_reload_signal_asks_for_a_reload_instead_of_being_forwarded() {
        let mut l = lifecycle(|_| {});
        let mut os = Recorder::default();
        let now = Instant::now();
        // Without reloads (no templates), HUP is forwarded as always.
        l.on_signal(SIGHUP, now, &mut os);
        assert_eq!(os.0, vec![("child", SIGHUP)]);
        assert!(!l.take_reload_request());
        l.reload_on(Some(SIGHUP));
        l.on_signal(SIGHUP, now, &mut os);
        l.on_signal(SIGUSR1, now, &mut os);
        assert_eq!(os.0, vec![("child", SIGHUP), ("child", SIGUSR1)]);
        assert!(l.take_reload_request());
        assert!(!l.take_reload_request(), "taken once");
        assert!(l.may_reload());
        // A file changed: the app gets the reload signal.
        l.after_reload(SIGHUP, None, &mut os);
        assert_eq!(os.0.last(), Some(&("child", SIGHUP)));
    }

    #[test]
    fn the_apps_reload_signal_is_explicit_or_the_reload_signal_rewritten() {
        let mut l = lifecycle(|s| {
            s.rewrites = vec![(SIGHUP, Some(SIGUSR2)), (SIGUSR1, None)];
            s.signal_group = true;
        });
        let mut os = Recorder::default();
        l.after_reload(SIGHUP, None, &mut os);
        l.after_reload(SIGHUP, Some(SIGWINCH), &mut os);
        l.after_reload(SIGUSR1, None, &mut os);
        l.after_reload(SIGHUP, Some(0), &mut os);
        assert_eq!(os.0, vec![("group", SIGUSR2), ("group", SIGWINCH)]);
    }

    #[test]
    fn no_reload_once_a_stop_has_begun() {
        let mut l = lifecycle(|s| s.pre_stop_delay = 5 * SEC);
        let mut os = Recorder::default();
        assert!(l.may_reload());
        l.on_signal(SIGTERM, Instant::now(), &mut os);
        assert!(!l.may_reload(), "held for the pre-stop delay");
        let mut l = lifecycle(|_| {});
        l.on_child_exit(ChildStatus::Exited(0));
        assert!(!l.may_reload());
        l.after_reload(SIGHUP, None, &mut os);
        assert!(os.0.is_empty(), "a reaped child's pid is not signalled");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ChildStatus::Exited(7).code(), 7);
        assert_eq!(ChildStatus::Signaled(SIGTERM).code(), 143);
        assert_eq!(ChildStatus::Signaled(SIGKILL).code(), 137);
        assert_eq!(ChildStatus::Signaled(64).code(), 192);
    }

    #[test]
    fn vm_mode_turns_ctrl_alt_del_and_term_into_the_stop_signal() {
        let mut s = SuperviseSettings {
            rewrites: vec![(SIGTERM, Some(SIGHUP))],
            ..SuperviseSettings::default()
        };
        s.for_vm(Some(SIGQUIT));
        assert_eq!(s.ctrl_alt_del, Some(SIGQUIT));
        assert_eq!(
            s.rewrites,
            vec![(SIGTERM, Some(SIGHUP)), (SIGTERM, Some(SIGQUIT))],
            "the user's rewrite comes first and wins"
        );
        s.for_vm(None);
        assert_eq!(s.ctrl_alt_del, Some(SIGTERM));
    }

    #[test]
    fn rewrites_parse() {
        assert_eq!(parse_rewrite("TERM:QUIT"), Ok((SIGTERM, Some(SIGQUIT))));
        assert_eq!(parse_rewrite("SIGUSR1:none"), Ok((SIGUSR1, None)));
        for bad in ["TERM", "TERM:BOGUS", ":QUIT"] {
            assert!(parse_rewrite(bad).is_err(), "{bad}");
        }
    }
}
