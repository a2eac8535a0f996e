//! The lifecycle of several processes (`--procfile`, docs/supervision.md,
//! "Several processes"): a small table of children, one row per process
//! (its name, state, stop signal, signal routing, restart policy and
//! backoff), and the decisions PID 1 makes over it, free of system calls.
//! The supervisor feeds events in (a signal, a process started or ended,
//! a deadline) and acts on the calls the table makes on a [`Crew`] (the
//! real one forks and signals; tests record).
//!
//! The rules:
//! - Start in table order, each process once the one before it has
//!   started (exec'd: a process waiting for its dependencies holds the ones
//!   after it).
//! - When a process ends by itself, the others are stopped and envinit
//!   exits with its code (128+N if signal N killed it); with `--restart`
//!   it is started again instead, after a backoff of 1 s doubling to 30 s
//!   (back to 1 s after a minute up), with one warning per restart. A
//!   process that could not be started at all (exec failed, fork failed)
//!   is never restarted.
//! - A stop signal (as [`super::Lifecycle`] takes it: `--rewrite`, the
//!   pre-stop delay, Ctrl-Alt-Del in VM mode) stops the processes in
//!   reverse order within the one grace period: each gets its stop signal
//!   (`--proc-stop-signal`, else the stop signal as received and rewritten)
//!   once every process after it has ended, or when its share of the grace
//!   period has passed (the k-th of n at the latest k/n of the way in), so
//!   one that ignores its signal cannot hold the others' graceful stop.
//!   When the grace period ends, everything left gets SIGKILL. After a stop
//!   signal envinit exits 0 when every process exited 0 or died of the
//!   stop signal it was sent, else with the code of the first that did
//!   not.
//! - Other signals are forwarded to every process, or, with
//!   `--proc-signals NAME=...`, only to the processes that list them,
//!   each as the process lists it (`HUP:USR2`: php-fpm reloads on USR2).
//! - Orphans: once every process has ended, whatever they left gets
//!   SIGTERM (and SIGCONT) within the same grace period.

use std::time::{Duration, Instant};

use nix::libc;

use super::{ChildStatus, Phase, SuperviseSettings, incoming};
use crate::exit;
use crate::options::format_duration;
use crate::signals;

/// The first pause before a restart.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process up this long restarts after [`FIRST_BACKOFF`] again.
pub const STEADY: Duration = Duration::from_secs(60);

/// One process of the table, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name (the Procfile's, or `main`).
    pub name: String,
    /// `--proc-stop-signal`; `None`: the stop signal received.
    pub stop_signal: Option<i32>,
    /// `--proc-signals`: the signals it gets, each as `(received, sent)`
    /// (after `--rewrite`); `None`: every one, as it is.
    pub signals: Option<Vec<(i32, i32)>>,
    /// `--restart`: start it again when it ends.
    pub restart: bool,
    /// `--proc-reload-signal`: what it gets after a reload changed a file.
    pub reload_signal: Option<i32>,
}

/// The process calls the table makes. Implementations ignore "no such
/// process": a target that is gone already needs no signal.
pub trait Crew {
    /// Starts process `index` (its dependency wait and exec follow in the
    /// forked child); its pid, or `None` when it could not be forked.
    fn start(&mut self, index: usize) -> Option<i32>;
    /// Sends `signal` to `pid` (a negative pid: that process group).
    fn signal(&mut self, pid: i32, signal: i32);
    /// Sends `signal` to every process envinit would reap.
    fn signal_all(&mut self, signal: i32);
}

/// Where one process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its turn in the start order has not come.
    Queued,
    /// Forked (this pid): waiting for its dependencies, or not exec'd yet.
    Starting(i32),
    /// Running (this pid) since then.
    Running(i32, Instant),
    /// Ended; starts again then (`--restart`).
    Backoff(Instant),
    /// Ended for good, or never to start (a stop came first).
    Done,
}

#[derive(Debug)]
struct Slot {
    member: Member,
    state: State,
    /// The next restart's pause.
    delay: Duration,
    /// The stop signal it was sent.
    told: Option<i32>,
    /// Stopped by job control (SIGSTOP, SIGTSTP...).
    stopped: bool,
}

impl Slot {
    fn pid(&self) -> Option<i32> {
        match self.state {
            State::Starting(pid) | State::Running(pid, _) => Some(pid),
            _ => None,
        }
    }
}

/// Why the processes are being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A stop signal arrived (as received).
    Signal(i32),
    /// This process ended by itself.
    Ended(usize),
}

/// The table of processes, from the first start to the end.
#[derive(Debug)]
pub struct Team<'a> {
    slots: Vec<Slot>,
    grace: Duration,
    pre_stop_delay: Duration,
    group: bool,
    rewrites: &'a [(i32, Option<i32>)],
    ctrl_alt_del: Option<i32>,
    phase: Phase,
    /// The next process to start in table order.
    queue: usize,
    /// When the stop began, and the stop signal of those without their own.
    stop: Option<(Instant, i32)>,
    cause: Option<Cause>,
    /// envinit's code, once it is known.
    code: Option<u8>,
    /// What the processes left was told to stop.
    orphans_told: bool,
    /// The signal that asks for a reload instead of being forwarded.
    reload_on: Option<i32>,
    /// It arrived since the reloads last looked.
    reload_asked: bool,
}

impl<'a> Team<'a> {
    /// A table of `members`, nothing started yet.
    pub fn new(settings: &'a SuperviseSettings, members: Vec<Member>) -> Team<'a> {
        Team {
            slots: members
                .into_iter()
                .map(|member| Slot {
                    member,
                    state: State::Queued,
                    delay: FIRST_BACKOFF,
                    told: None,
                    stopped: false,
                })
                .collect(),
            grace: settings.grace,
            pre_stop_delay: settings.pre_stop_delay,
            group: settings.signal_group,
            rewrites: &settings.rewrites,
            ctrl_alt_del: settings.ctrl_alt_del,
            phase: Phase::Running,
            queue: 0,
            stop: None,
            cause: None,
            code: None,
            orphans_told: false,
            reload_on: None,
            reload_asked: false,
        }
    }

    /// Starts the first process.
    pub fn begin(&mut self, now: Instant, crew: &mut impl Crew) {
        self.start_next(now, crew);
    }

    /// Process `index`'s name.
    pub fn name(&self, index: usize) -> &str {
        &self.slots[index].member.name
    }

    /// Process `index`'s state.
    pub fn state(&self, index: usize) -> State {
        self.slots[index].state
    }

    /// The process running as `pid`, if one is.
    pub fn index_of(&self, pid: i32) -> Option<usize> {
        self.slots.iter().position(|s| s.pid() == Some(pid))
    }

    /// Why the processes are being stopped, if they are.
    pub fn cause(&self) -> Option<Cause> {
        self.cause
    }

    /// True once SIGKILL was sent to whatever was left.
    pub fn killed(&self) -> bool {
        self.phase == Phase::Killed
    }

    fn target(&self, pid: i32) -> i32 {
        if self.group { -pid } else { pid }
    }

    fn start_next(&mut self, now: Instant, crew: &mut impl Crew) {
        if self.phase == Phase::Running && self.queue < self.slots.len() {
            self.queue += 1;
            self.start(self.queue - 1, now, crew);
        }
    }

    fn start(&mut self, i: usize, now: Instant, crew: &mut impl Crew) {
        self.slots[i].told = None;
        match crew.start(i) {
            Some(pid) => self.slots[i].state = State::Starting(pid),
            // It could not be forked: as if it ended at once, never to run.
            None => self.ended(i, ChildStatus::Exited(exit::OS_ERROR), now, crew),
        }
    }

    /// The process `pid` has started (its exec succeeded).
    pub fn on_started(&mut self, pid: i32, now: Instant, crew: &mut impl Crew) {
        let Some(i) = self.index_of(pid) else {
            return;
        };
        if self.slots[i].state == State::Starting(pid) {
            self.slots[i].state = State::Running(pid, now);
            if i + 1 == self.queue {
                self.start_next(now, crew);
            }
        }
    }

    /// The process `pid` was reaped with `status`; `never_ran`: it could
    /// not be executed. Returns whether `pid` was one of the table's.
    pub fn on_exit(
        &mut self,
        pid: i32,
        status: ChildStatus,
        never_ran: bool,
        now: Instant,
        crew: &mut impl Crew,
    ) -> bool {
        let Some(i) = self.index_of(pid) else {
            return false;
        };
        let slot = &mut self.slots[i];
        let restart = matches!(self.phase, Phase::Running | Phase::PreStop { .. })
            && slot.member.restart
            && !never_ran;
        if !restart {
            self.ended(i, status, now, crew);
            return true;
        }
        if let State::Running(_, since) = slot.state {
            if now.saturating_duration_since(since) >= STEADY {
                slot.delay = FIRST_BACKOFF;
            }
        }
        let delay = slot.delay;
        slot.delay = (delay * 2).min(MAX_BACKOFF);
        slot.state = State::Backoff(now + delay);
        slot.stopped = false;
        tracing::warn!(
            process = slot.member.name.as_str(),
            code = status.code(),
            delay = format_duration(delay).as_str(),
            "process ended: restarting it (--restart)"
        );
        if i + 1 == self.queue {
            self.start_next(now, crew);
        }
        true
    }

    /// Process `i` ended for good.
    fn ended(&mut self, i: usize, status: ChildStatus, now: Instant, crew: &mut impl Crew) {
        let slot = &mut self.slots[i];
        slot.state = State::Done;
        slot.stopped = false;
        let code = status.code();
        if matches!(self.phase, Phase::Running | Phase::PreStop { .. }) {
            // The first to end by itself: its code is envinit's.
            self.cause = Some(Cause::Ended(i));
            self.code = Some(code);
            if code != 0 {
                let name = slot.member.name.as_str();
                tracing::warn!(process = name, code, "process failed: stopping the others");
            }
            let stop = incoming(libc::SIGTERM, None, self.rewrites).map_or(libc::SIGTERM, |s| s.1);
            self.begin_stop(now, stop, crew);
            return;
        }
        let clean = match status {
            ChildStatus::Exited(0) => true,
            ChildStatus::Signaled(signal) => slot.told == Some(signal),
            ChildStatus::Exited(_) => false,
        };
        if !clean {
            self.code.get_or_insert(code);
        }
        self.advance(now, crew);
    }

    /// The process `pid` was stopped (`true`) or continued by job control.
    pub fn on_stopped(&mut self, pid: i32, stopped: bool, crew: &mut impl Crew) {
        if let Some(i) = self.index_of(pid) {
            self.slots[i].stopped = stopped;
            if stopped && self.slots[i].told.is_some() {
                // Stopped while stopping: it could never act on the signal.
                crew.signal(self.target(pid), libc::SIGCONT);
            }
        }
    }

    /// A signal (other than SIGCHLD) was received.
    pub fn on_signal(&mut self, received: i32, now: Instant, crew: &mut impl Crew) {
        if self.reload_on == Some(received) {
            self.reload_asked = true;
            return;
        }
        let Some((received, forward, stop)) = incoming(received, self.ctrl_alt_del, self.rewrites)
        else {
            return;
        };
        if !stop {
            self.route(forward, crew);
            return;
        }
        match self.phase {
            Phase::Running if !self.pre_stop_delay.is_zero() => {
                self.cause = Some(Cause::Signal(received));
                self.phase = Phase::PreStop {
                    until: now + self.pre_stop_delay,
                    signal: forward,
                };
            }
            Phase::Running | Phase::PreStop { .. } => {
                self.cause.get_or_insert(Cause::Signal(received));
                self.begin_stop(now, forward, crew);
            }
            Phase::Draining { .. } | Phase::Killed => {
                // Another stop signal: on to those already stopping.
                for slot in &self.slots {
                    if let Some(pid) = slot.pid().filter(|_| slot.told.is_some()) {
                        crew.signal(self.target(pid), forward);
                    }
                }
            }
        }
    }

    /// Forwards `signal` (after `--rewrite`) to every process that takes
    /// it (`--proc-signals`), as that process takes it.
    fn route(&self, signal: i32, crew: &mut impl Crew) {
        for slot in &self.slots {
            let routed = match &slot.member.signals {
                None => Some(signal),
                Some(routes) => routes.iter().find(|r| r.0 == signal).map(|r| r.1),
            };
            if let (Some(pid), Some(signal)) = (slot.pid(), routed) {
                crew.signal(self.target(pid), signal);
            }
        }
    }

    /// Reloads (src/reload.rs): `signal` asks for one instead of being
    /// forwarded.
    pub fn reload_on(&mut self, signal: Option<i32>) {
        self.reload_on = signal;
    }

    /// Whether the reload signal arrived since the last call (which clears
    /// it).
    pub fn take_reload_request(&mut self) -> bool {
        std::mem::take(&mut self.reload_asked)
    }

    /// Whether a reload may run now: no stop has begun.
    pub fn may_reload(&self) -> bool {
        self.phase == Phase::Running
    }

    /// After a reload that changed a file's content: the processes named by
    /// `--proc-reload-signal` get their own signal (and only they); when
    /// none is named, every process gets the app's reload signal
    /// (`explicit`, `--app-reload-signal`, 0 for none; else `signal` as
    /// `--rewrite` makes it), routed as any forwarded signal is
    /// (`--proc-signals`).
    pub fn after_reload(&mut self, signal: i32, explicit: Option<i32>, crew: &mut impl Crew) {
        if self.slots.iter().any(|s| s.member.reload_signal.is_some()) {
            for slot in &self.slots {
                let sent = slot.member.reload_signal.filter(|s| *s != 0);
                if let (Some(pid), Some(sent)) = (slot.pid(), sent) {
                    crew.signal(self.target(pid), sent);
                }
            }
            return;
        }
        let forward = match explicit {
            Some(explicit) => Some(explicit),
            None => match self.rewrites.iter().find(|(from, _)| *from == signal) {
                Some((_, to)) => *to,
                None => Some(signal),
            },
        };
        if let Some(forward) = forward.filter(|s| *s != 0) {
            self.route(forward, crew);
        }
    }

    fn begin_stop(&mut self, now: Instant, signal: i32, crew: &mut impl Crew) {
        self.phase = Phase::Draining {
            kill_at: now + self.grace,
        };
        self.stop = Some((now, signal));
        for slot in &mut self.slots {
            if matches!(slot.state, State::Queued | State::Backoff(_)) {
                slot.state = State::Done;
            }
        }
        self.advance(now, crew);
    }

    /// Sends the stop signals that are due: in reverse order, each once
    /// every process after it has ended or its turn has come.
    fn advance(&mut self, now: Instant, crew: &mut impl Crew) {
        let Some((began, signal)) = self.stop else {
            return;
        };
        let mut clear = true;
        for i in (0..self.slots.len()).rev() {
            let Some(pid) = self.slots[i].pid() else {
                continue;
            };
            if self.slots[i].told.is_none() {
                if !clear && now < self.turn(began, i) {
                    break;
                }
                let target = self.target(pid);
                let slot = &mut self.slots[i];
                let stop = slot.member.stop_signal.unwrap_or(signal);
                tracing::info!(
                    process = slot.member.name.as_str(),
                    signal = %signals::name(stop),
                    "stopping process"
                );
                crew.signal(target, stop);
                if slot.stopped {
                    crew.signal(target, libc::SIGCONT);
                }
                slot.told = Some(stop);
            }
            clear = false;
        }
    }

    /// When process `i` gets its stop signal at the latest.
    fn turn(&self, began: Instant, i: usize) -> Instant {
        let n = self.slots.len() as u32;
        let k = n - 1 - i as u32;
        began + self.grace * k / n
    }

    /// After a round of reaping: once every process has ended, what they
    /// left (`others_left`) gets SIGTERM and SIGCONT, once.
    pub fn after_reaping(&mut self, others_left: bool, crew: &mut impl Crew) {
        if !others_left
            || self.orphans_told
            || self.phase == Phase::Killed
            || self.slots.iter().any(|s| s.state != State::Done)
        {
            return;
        }
        self.orphans_told = true;
        crew.signal_all(libc::SIGTERM);
        crew.signal_all(libc::SIGCONT);
    }

    /// When the supervisor must wake up even without a signal.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::PreStop { until, .. } => Some(until),
            Phase::Draining { kill_at } => {
                let (began, _) = self.stop?;
                let next = (0..self.slots.len())
                    .rev()
                    .find(|&i| self.slots[i].pid().is_some() && self.slots[i].told.is_none())
                    .map(|i| self.turn(began, i));
                Some(next.map_or(kill_at, |t| t.min(kill_at)))
            }
            Phase::Running => self
                .slots
                .iter()
                .filter_map(|s| match s.state {
                    State::Backoff(at) => Some(at),
                    _ => None,
                })
                .min(),
            Phase::Killed => None,
        }
    }

    /// Acts on the deadlines that have passed by `now`.
    pub fn on_tick(&mut self, now: Instant, crew: &mut impl Crew) {
        match self.phase {
            Phase::PreStop { until, signal } if now >= until => {
                self.begin_stop(now, signal, crew);
            }
            Phase::Draining { kill_at } if now >= kill_at => {
                super::log_grace_over(self.grace);
                crew.signal_all(libc::SIGKILL);
                self.phase = Phase::Killed;
            }
            Phase::Draining { .. } => self.advance(now, crew),
            Phase::Running => {
                for i in 0..self.slots.len() {
                    if matches!(self.slots[i].state, State::Backoff(at) if now >= at) {
                        self.start(i, now, crew);
                    }
                }
            }
            _ => {}
        }
    }

    /// envinit's exit code, once every process has ended and nothing is
    /// left to reap.
    pub fn finished(&self, others_left: bool) -> Option<u8> {
        let done = !others_left && self.slots.iter().all(|s| s.state == State::Done);
        done.then(|| self.code.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{SIGCONT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

    /// Records every call: `("start", index)`, `(pid, signal)` as
    /// `("kill", pid * 100 + signal)`, `("all", signal)`. Process `i`'s
    /// n-th start gets pid `10 * (i + 1) + n`.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(&'static str, i32)>,
        starts: Vec<i32>,
        fail: Option<usize>,
    }

    impl Crew for Recorder {
        fn start(&mut self, index: usize) -> Option<i32> {
            self.calls.push(("start", index as i32));
            if self.fail == Some(index) {
                return None;
            }
            if self.starts.len() <= index {
                self.starts.resize(index + 1, 0);
            }
            self.starts[index] += 1;
            Some(10 * (index as i32 + 1) + self.starts[index] - 1)
        }
        fn signal(&mut self, pid: i32, signal: i32) {
            self.calls.push(("kill", pid * 100 + signal));
        }
        fn signal_all(&mut self, signal: i32) {
            self.calls.push(("all", signal));
        }
    }

    impl Recorder {
        fn take(&mut self) -> Vec<(&'static str, i32)> {
            std::mem::take(&mut self.calls)
        }
    }

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            stop_signal: None,
            signals: None,
            restart: false,
            reload_signal: None,
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    /// php-fpm (10), nginx (20), cron (30), all started at t0.
    fn three(
        f: impl FnOnce(&mut SuperviseSettings, &mut [Member]),
    ) -> (Team<'static>, Recorder, Instant) {
        let mut settings = SuperviseSettings {
            grace: 9 * SEC,
            ..SuperviseSettings::default()
        };
        let mut members = vec![member("php-fpm"), member("nginx"), member("cron")];
        f(&mut settings, &mut members);
        let settings: &'static SuperviseSettings = Box::leak(Box::new(settings));
        let mut team = Team::new(settings, members);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        team.begin(t0, &mut os);
        for pid in [10, 20, 30] {
            team.on_started(pid, t0, &mut os);
        }
        assert_eq!(os.take(), [("start", 0), ("start", 1), ("start", 2)]);
        (team, os, t0)
    }

    #[test]
    fn starts_in_order_each_once_the_one_before_has_started() {
        let settings = SuperviseSettings::default();
        let mut team = Team::new(&settings, vec![member("a"), member("b"), member("c")]);
        let mut os = Recorder::default();
        let t0 = Instant::now();
        team.begin(t0, &mut os);
        assert_eq!(os.take(), [("start", 0)]);
        assert_eq!(team.state(0), State::Starting(10));
        assert_eq!(team.state(1), State::Queued);
        team.on_started(10, t0, &mut os);
        assert_eq!(os.take(), [("start", 1)]);
        team.on_started(10, t0, &mut os);
        assert!(os.take().is_empty(), "a started once");
        team.on_started(20, t0, &mut os);
        assert_eq!(os.take(), [("start", 2)]);
        team.on_started(30, t0, &mut os);
        assert!(os.take().is_empty());
        assert_eq!(team.state(2), State::Running(30, t0));
        assert_eq!(team.deadline(), None);
        assert_eq!(team.finished(true), None);
    }

    #[test]
    fn the_first_to_end_stops_the_others_in_reverse_order_with_its_code() {
        let (mut team, mut os, t0) = three(|_, m| m[1].stop_signal = Some(SIGQUIT));
        assert!(team.on_exit(10, ChildStatus::Exited(3), false, t0 + SEC, &mut os));
        // cron first, at once; nginx once cron has ended (or at 3 s).
        assert_eq!(os.take(), [("kill", 30 * 100 + SIGTERM)]);
        assert_eq!(team.cause(), Some(Cause::Ended(0)));
        assert_eq!(team.deadline(), Some(t0 + SEC + 3 * SEC));
        assert!(team.on_exit(
            30,
            ChildStatus::Signaled(SIGTERM),
            false,
            t0 + 2 * SEC,
            &mut os
        ));
        assert_eq!(os.take(), [("kill", 20 * 100 + SIGQUIT)]);
        assert_eq!(team.deadline(), Some(t0 + 10 * SEC), "the grace period");
        assert!(team.on_exit(20, ChildStatus::Exited(0), false, t0 + 3 * SEC, &mut os));
        assert_eq!(team.finished(true), None, "orphans left");
        team.after_reaping(true, &mut os);
        assert_eq!(os.take(), [("all", SIGTERM), ("all", SIGCONT)]);
        team.after_reaping(true, &mut os);
        assert!(os.take().is_empty(), "told once");
        assert_eq!(team.finished(false), Some(3), "php-fpm's code");
        assert!(
            !team.on_exit(99, ChildStatus::Exited(0), false, t0, &mut os),
            "an orphan"
        );
    }

    #[test]
    fn a_signal_kills_count_as_128_plus_n() {
        let (mut team, mut os, t0) = three(|_, _| {});
        team.on_exit(20, ChildStatus::Signaled(SIGKILL), false, t0, &mut os);
        for pid in [10, 30] {
            team.on_exit(pid, ChildStatus::Exited(0), false, t0, &mut os);
        }
        assert_eq!(team.finished(false), Some(137));
    }

    #[test]
    fn a_stop_signal_stops_in_reverse_order_each_at_its_turn_at_the_latest() {
        let (mut team, mut os, t0) = three(|_, m| {
            m[0].stop_signal = Some(SIGQUIT);
            m[1].stop_signal = Some(SIGQUIT);
        });
        team.on_signal(SIGTERM, t0, &mut os);
        assert_eq!(os.take(), [("kill", 30 * 100 + SIGTERM)]);
        assert_eq!(team.cause(), Some(Cause::Signal(SIGTERM)));
        // cron ignores SIGTERM: nginx's turn comes at 3 s of 9, php-fpm's at 6.
        assert_eq!(team.deadline(), Some(t0 + 3 * SEC));
        team.on_tick(t0 + 2 * SEC, &mut os);
        assert!(os.take().is_empty());
        team.on_tick(t0 + 3 * SEC, &mut os);
        assert_eq!(os.take(), [("kill", 20 * 100 + SIGQUIT)]);
        assert_eq!(team.deadline(), Some(t0 + 6 * SEC));
        // nginx ends, but cron still runs: php-fpm waits for its turn.
        team.on_exit(20, ChildStatus::Exited(0), false, t0 + 4 * SEC, &mut os);
        assert!(os.take().is_empty());
        team.on_tick(t0 + 6 * SEC, &mut os);
        assert_eq!(os.take(), [("kill", 10 * 100 + SIGQUIT)]);
        assert_eq!(team.deadline(), Some(t0 + 9 * SEC));
        team.on_exit(10, ChildStatus::Exited(0), false, t0 + 5 * SEC, &mut os);
        team.on_tick(t0 + 9 * SEC, &mut os);
        assert_eq!(os.take(), [("all", SIGKILL)]);
        assert!(team.killed());
        team.on_exit(
            30,
            ChildStatus::Signaled(SIGKILL),
            false,
            t0 + 9 * SEC,
            &mut os,
        );
        assert_eq!(team.finished(false), Some(137), "cron had to be killed");
    }

    #[test]
    fn a_clean_stop_exits_0_and_an_unclean_one_with_the_first_bad_code() {
        let (mut team, mut os, t0) = three(|s, m| {
            s.rewrites = vec![(SIGTERM, Some(SIGQUIT))];
            m[2].stop_signal = Some(SIGTERM);
        });
        team.on_signal(SIGTERM, t0, &mut os);
        team.on_exit(30, ChildStatus::Signaled(SIGTERM), false, t0, &mut os);
        team.on_exit(20, ChildStatus::Exited(0), false, t0, &mut os);
        assert_eq!(
            os.take(),
            [
                ("kill", 30 * 100 + SIGTERM),
                ("kill", 20 * 100 + SIGQUIT),
                ("kill", 10 * 100 + SIGQUIT)
            ],
            "--rewrite TERM:QUIT is the stop signal of those without their own"
        );
        team.on_exit(10, ChildStatus::Signaled(SIGQUIT), false, t0, &mut os);
        assert_eq!(team.finished(false), Some(0));

        let (mut team, mut os, t0) = three(|_, _| {});
        team.on_signal(SIGINT, t0, &mut os);
        team.on_exit(30, ChildStatus::Exited(2), false, t0, &mut os);
        team.on_exit(20, ChildStatus::Signaled(SIGTERM), false, t0, &mut os);
        team.on_exit(10, ChildStatus::Exited(0), false, t0, &mut os);
        assert_eq!(os.take()[0], ("kill", 30 * 100 + SIGINT));
        assert_eq!(
            team.finished(false),
            Some(2),
            "cron's exit 2 first; nginx died of a signal it was not sent"
        );
    }

    #[test]
    fn restart_backs_off_doubling_to_30s_and_resets_after_a_minute_up() {
        let (mut team, mut os, t0) = three(|_, m| m[2].restart = true);
        let mut now = t0;
        let mut pid = 30;
        for delay in [1, 2, 4, 8, 16, 30, 30] {
            assert!(team.on_exit(pid, ChildStatus::Exited(1), false, now, &mut os));
            assert!(os.take().is_empty(), "nothing stopped");
            assert_eq!(team.state(2), State::Backoff(now + delay * SEC));
            assert_eq!(team.deadline(), Some(now + delay * SEC));
            team.on_tick(now + delay * SEC - Duration::from_millis(1), &mut os);
            assert!(os.take().is_empty());
            now += delay * SEC;
            team.on_tick(now, &mut os);
            assert_eq!(os.take(), [("start", 2)]);
            pid += 1;
            team.on_started(pid, now, &mut os);
        }
        // Up for a minute: the next pause is 1 s again.
        now += STEADY;
        team.on_exit(pid, ChildStatus::Signaled(SIGKILL), false, now, &mut os);
        assert_eq!(team.state(2), State::Backoff(now + SEC));
        assert_eq!(team.cause(), None);
    }

    #[test]
    fn a_stop_during_a_backoff_ends_it_and_the_process_is_not_started_again() {
        let (mut team, mut os, t0) = three(|_, m| m[2].restart = true);
        team.on_exit(30, ChildStatus::Exited(1), false, t0, &mut os);
        team.on_signal(SIGTERM, t0 + Duration::from_millis(100), &mut os);
        assert_eq!(
            os.take(),
            [("kill", 20 * 100 + SIGTERM)],
            "cron is not running"
        );
        assert_eq!(team.state(2), State::Done);
        team.on_tick(t0 + 2 * SEC, &mut os);
        assert!(!os.take().contains(&("start", 2)));
        team.on_exit(20, ChildStatus::Signaled(SIGTERM), false, t0, &mut os);
        team.on_exit(10, ChildStatus::Signaled(SIGTERM), false, t0, &mut os);
        assert_eq!(team.finished(false), Some(0));
    }

    #[test]
    fn a_stop_during_a_dependency_wait_stops_the_waiting_process_and_starts_no_more() {
        let settings = SuperviseSettings::default();
        let mut team = Team::new(
            &settings,
            vec![member("php-fpm"), member("nginx"), member("cron")],
        );
        let mut os = Recorder::default();
        let t0 = Instant::now();
        team.begin(t0, &mut os);
        team.on_started(10, t0, &mut os);
        // nginx waits for php-fpm's socket; cron is queued behind it.
        team.on_signal(SIGTERM, t0, &mut os);
        assert_eq!(
            os.take(),
            [("start", 0), ("start", 1), ("kill", 20 * 100 + SIGTERM)]
        );
        assert_eq!(team.state(2), State::Done);
        // The waiter dies of the signal, as the program would have.
        team.on_exit(20, ChildStatus::Signaled(SIGTERM), false, t0, &mut os);
        assert_eq!(os.take(), [("kill", 10 * 100 + SIGTERM)]);
        team.on_exit(10, ChildStatus::Signaled(SIGTERM), false, t0, &mut os);
        assert_eq!(team.finished(false), Some(0));
    }

    #[test]
    fn a_process_that_cannot_run_is_not_restarted_and_ends_the_rest() {
        let (mut team, mut os, t0) = three(|_, m| m[2].restart = true);
        team.on_exit(30, ChildStatus::Exited(1), false, t0, &mut os);
        team.on_tick(t0 + SEC, &mut os);
        assert_eq!(os.take(), [("start", 2)]);
        team.on_exit(31, ChildStatus::Exited(127), true, t0 + SEC, &mut os);
        assert_eq!(team.cause(), Some(Cause::Ended(2)));
        assert_eq!(os.take(), [("kill", 20 * 100 + SIGTERM)]);
        // Fork failures too, at the first start.
        let settings = SuperviseSettings::default();
        let mut team = Team::new(&settings, vec![member("a"), member("b")]);
        let mut os = Recorder {
            fail: Some(1),
            ..Recorder::default()
        };
        team.begin(t0, &mut os);
        team.on_started(10, t0, &mut os);
        assert_eq!(
            os.take(),
            [("start", 0), ("start", 1), ("kill", 10 * 100 + SIGTERM)]
        );
        team.on_exit(10, ChildStatus::Exited(0), false, t0, &mut os);
        assert_eq!(team.finished(false), Some(exit::OS_ERROR));
    }

    #[test]
    fn signals_go_to_every_process_or_where_routed() {
        let (mut team, mut os, t0) = three(|s, m| {
            m[0].signals = Some(vec![(SIGUSR2, SIGUSR2), (SIGHUP, SIGUSR1)]);
            m[2].signals = Some(vec![]);
            s.rewrites = vec![(SIGUSR1, Some(SIGUSR2))];
        });
        team.on_signal(SIGHUP, t0, &mut os);
        assert_eq!(
            os.take(),
            [("kill", 10 * 100 + SIGUSR1), ("kill", 20 * 100 + SIGHUP)],
            "HUP reaches php-fpm as USR1"
        );
        team.on_signal(SIGUSR1, t0, &mut os);
        assert_eq!(
            os.take(),
            [("kill", 10 * 100 + SIGUSR2), ("kill", 20 * 100 + SIGUSR2)],
            "routed after --rewrite"
        );
        team.on_signal(40, t0, &mut os);
        assert_eq!(os.take(), [("kill", 20 * 100 + 40)]);
    }

    #[test]
    fn group_mode_signals_each_process_group() {
        let (mut team, mut os, t0) = three(|s, _| s.signal_group = true);
        team.on_signal(SIGHUP, t0, &mut os);
        assert_eq!(
            os.take(),
            [
                ("kill", -10 * 100 + SIGHUP),
                ("kill", -20 * 100 + SIGHUP),
                ("kill", -30 * 100 + SIGHUP)
            ]
        );
    }

    #[test]
    fn pre_stop_delay_holds_the_stop_and_a_second_stop_goes_to_those_stopping() {
        let (mut team, mut os, t0) = three(|s, _| s.pre_stop_delay = 2 * SEC);
        team.on_signal(SIGTERM, t0, &mut os);
        assert!(os.take().is_empty());
        assert_eq!(team.deadline(), Some(t0 + 2 * SEC));
        team.on_tick(t0 + 2 * SEC, &mut os);
        assert_eq!(os.take(), [("kill", 30 * 100 + SIGTERM)]);
        team.on_signal(SIGINT, t0 + 3 * SEC, &mut os);
        assert_eq!(os.take(), [("kill", 30 * 100 + SIGINT)]);
    }

    #[test]
    fn a_process_stopped_by_job_control_is_continued_after_its_stop_signal() {
        let (mut team, mut os, t0) = three(|_, _| {});
        team.on_stopped(30, true, &mut os);
        assert!(os.take().is_empty());
        team.on_signal(SIGTERM, t0, &mut os);
        assert_eq!(
            os.take(),
            [("kill", 30 * 100 + SIGTERM), ("kill", 30 * 100 + SIGCONT)]
        );
        team.on_stopped(30, true, &mut os);
        assert_eq!(os.take(), [("kill", 30 * 100 + SIGCONT)]);
    }

    #[test]
    fn ctrl_alt_del_is_a_stop_in_vm_mode() {
        let (mut team, mut os, t0) = three(|s, _| s.ctrl_alt_del = Some(SIGQUIT));
        team.on_signal(SIGINT, t0, &mut os);
        assert_eq!(os.take(), [("kill", 30 * 100 + SIGQUIT)]);
        assert_eq!(team.cause(), Some(Cause::Signal(SIGQUIT)));
    }

    #[test]
    fn a_reload_signal_asks_for_a_reload_and_the_named_processes_are_told() {
        // php-fpm reloads on USR2, nginx on HUP; cron is not told.
        let (mut team, mut os, t0) = three(|_, m| {
            m[0].reload_signal = Some(SIGUSR2);
            m[1].reload_signal = Some(SIGHUP);
        });
        team.reload_on(Some(SIGHUP));
        team.on_signal(SIGHUP, t0, &mut os);
        assert!(os.take().is_empty(), "taken, not forwarded");
        assert!(team.take_reload_request());
        assert!(!team.take_reload_request(), "taken once");
        assert!(team.may_reload());
        team.after_reload(SIGHUP, None, &mut os);
        assert_eq!(
            os.take(),
            [("kill", 10 * 100 + SIGUSR2), ("kill", 20 * 100 + SIGHUP)]
        );
        // None named: every process gets the app's signal, routed.
        let (mut team, mut os, t0) = three(|_, m| m[2].signals = Some(Vec::new()));
        team.after_reload(SIGHUP, Some(SIGUSR1), &mut os);
        assert_eq!(
            os.take(),
            [("kill", 10 * 100 + SIGUSR1), ("kill", 20 * 100 + SIGUSR1)]
        );
        // No reload once a stop has begun.
        team.on_signal(SIGTERM, t0, &mut os);
        assert!(!team.may_reload());
    }
}
