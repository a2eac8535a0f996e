//! Lifecycle: what PID 1 decides on each event (a signal arrives, the main
//! child stops, exits, or a deadline passes), free of system calls so that
//! the shutdown logic can be unit-tested without real processes.
//!
//! The supervisor feeds events in; the decisions come out as calls on a
//! [`Processes`] implementation (the real one sends signals; tests record).
//!
//! Theory of operation:
//! - Every received signal is rewritten (`--rewrite`) and forwarded to the
//!   main child, or to its process group with `--signal-group`.
//! - A stop signal (SIGTERM, SIGINT, SIGQUIT as received) is held for the
//!   pre-stop delay (a second stop signal cuts the delay short), then
//!   forwarded, and the grace period starts. A child seen stopped (Ctrl-Z,
//!   SIGSTOP) gets SIGCONT right after, so it can act on the stop signal.
//! - When the main child is gone but other processes remain, they get
//!   SIGTERM (and SIGCONT), within the grace period (started now if no stop
//!   signal started it before).
//! - When the grace period ends, everything left gets SIGKILL.
//! - envinit is done when the main child is gone and nothing is left to reap;
//!   it never waits longer than it must.

use std::time::{Duration, Instant};

use nix::libc;

use crate::settings::SuperviseSettings;
use crate::signals;

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
    phase: Phase,
    /// The main child's end, once it has been reaped.
    status: Option<ChildStatus>,
    /// The main child is stopped (SIGTSTP, SIGSTOP, SIGTTIN, SIGTTOU).
    child_stopped: bool,
    cause: Option<StopCause>,
    /// The processes left after the main child were told to stop.
    others_told: bool,
}

/// Is `signal`, as received, one that asks the container to stop?
pub fn is_stop_signal(signal: i32) -> bool {
    matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT)
}

impl Lifecycle {
    /// A lifecycle for a freshly spawned main child.
    pub fn new(settings: &SuperviseSettings) -> Lifecycle {
        Lifecycle {
            grace: settings.grace,
            pre_stop_delay: settings.pre_stop_delay,
            group: settings.signal_group,
            rewrites: settings.rewrites.clone(),
            phase: Phase::Running,
            status: None,
            child_stopped: false,
            cause: None,
            others_told: false,
        }
    }

    /// A signal (other than SIGCHLD) was received.
    pub fn on_signal(&mut self, received: i32, now: Instant, os: &mut impl Processes) {
        let forward = match self.rewrites.iter().find(|(from, _)| *from == received) {
            Some((_, to)) => *to,
            None => Some(received),
        };
        let Some(forward) = forward else {
            tracing::debug!(signal = %signals::name(received), "signal dropped (--rewrite)");
            return;
        };
        if !is_stop_signal(received) {
            self.forward(forward, false, os);
            return;
        }
        match self.phase {
            Phase::Running if !self.pre_stop_delay.is_zero() => {
                tracing::info!(
                    signal = %signals::name(received),
                    delay = ?self.pre_stop_delay,
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
        tracing::debug!(grace = ?self.grace, "main child gone: stopping the processes left");
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

    /// When the supervisor must wake up even without a signal.
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
                tracing::warn!(grace = ?self.grace, "grace period over: killing every process left");
                os.signal_all(libc::SIGKILL);
                self.phase = Phase::Killed;
            }
            _ => {}
        }
    }

    /// The main child's end, once it is gone and nothing is left to reap.
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
