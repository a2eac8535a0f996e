//! Wait: dependencies the app needs before it starts (`--wait URL`), and
//! one-shot health probes (`envinit --probe URL`, for HEALTHCHECK). Owns the
//! URL forms and the checks behind them:
//!
//! - `tcp://HOST:PORT`: a TCP connection succeeds.
//! - `unix:///PATH`: a connection to the unix socket succeeds.
//! - `file:///PATH`: the path exists.
//! - `http://HOST[:PORT][/PATH]`: a plain HTTP/1.1 GET (with a Host header)
//!   answers with any 2xx status; redirects are not followed.
//!
//! Promises:
//! - No threads: every check is a non-blocking socket; all of them and the
//!   signalfd are watched by one `poll`. A stop signal during the wait ends
//!   it at once (the caller exits 128+N); other signals that arrive before
//!   the app exists are dropped (there is nobody to forward them to).
//! - Only name resolution blocks: host names go through the C library's
//!   `getaddrinfo` (musl reads /etc/hosts and /etc/resolv.conf), once per
//!   attempt, so a slow DNS server delays the other checks by its timeout.
//! - Retries back off from [`FIRST_RETRY`] doubling to [`MAX_RETRY`]; one
//!   attempt lasts at most [`ATTEMPT_TIMEOUT`]; the whole wait is bounded by
//!   `--wait-timeout`. A probe makes one attempt per URL, bounded by
//!   `--probe-timeout`.
//! - Every failure has a reason in the OS's words (connection refused, no
//!   such host, status 503, timed out), reported per dependency.
//! - Nothing here runs, allocates or reads a file unless `--wait` or
//!   `--probe` is given.

mod connect;
mod engine;
mod url;

use std::time::{Duration, Instant};

use crate::exit::{self, Failure};
use crate::options::{Given, format_duration, parse_duration};
use crate::signals::intake::Signals;

use engine::{Ended, Run};
pub use url::{Kind, Target, parse};

/// The first pause before a retry.
pub const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest pause between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(1);
/// How long one attempt of `--wait` may take (connect and HTTP answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a warning says what is still awaited.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// The most bytes of an HTTP answer read to find its status line.
const MAX_STATUS_LINE: usize = 1024;

/// Dependencies to check and the bound on the whole check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// The URLs, as given.
    pub targets: Vec<Target>,
    /// `--wait-timeout` (whole wait) or `--probe-timeout` (each probe).
    pub timeout: Duration,
}

impl Checks {
    /// No targets, with this timeout.
    pub const fn new(timeout: Duration) -> Checks {
        Checks {
            targets: Vec::new(),
            timeout,
        }
    }

    /// `--wait`'s default: nothing to wait for, within 60 s.
    pub const fn wait_default() -> Checks {
        Checks::new(Duration::from_secs(60))
    }

    /// `--probe`'s default: nothing to probe, 2 s per attempt.
    pub const fn probe_default() -> Checks {
        Checks::new(Duration::from_secs(2))
    }

    /// The URLs of option `urls` (`wait` or `probe`) and the timeout of
    /// option `timeout` (`wait-timeout`, `probe-timeout`) over `checks`.
    pub fn from_options(
        given: &mut Given,
        urls: &str,
        timeout: &str,
        mut checks: Checks,
    ) -> Result<Checks, Failure> {
        if let Some(r) = given.take(timeout) {
            checks.timeout = r.parse_last(parse_duration)?.unwrap_or(checks.timeout);
        }
        if let Some(r) = given.take(urls) {
            checks.targets = r.parse_each(parse)?;
        }
        Ok(checks)
    }
}

/// Waits until every target is ready (exit codes as `Err`: 69 when the
/// wait times out, 128+N when stop signal N arrives). Logs one info line per
/// dependency when it is ready, one warning every [`WARN_EVERY`] while some
/// are not, and one error line per dependency still down at the end.
pub fn wait_for(checks: &Checks, signals: &Signals) -> Result<(), Failure> {
    wait_as(&checks.targets, checks.timeout, signals, 0)
}

/// [`wait_for`] for one process of several (`--proc-wait`, in the forked
/// process before its exec): `stop_signal`, the process's own (0 for
/// none), ends the wait as well as the usual stop signals.
pub fn wait_for_process(
    targets: &[Target],
    timeout: Duration,
    signals: &Signals,
    stop_signal: i32,
) -> Result<(), Failure> {
    wait_as(targets, timeout, signals, stop_signal)
}

fn wait_as(
    targets: &[Target],
    timeout: Duration,
    signals: &Signals,
    also: i32,
) -> Result<(), Failure> {
    let mut run = Run::new(targets, true);
    match run.go(Instant::now() + timeout, Some(signals), also) {
        Ended::AllReady => Ok(()),
        Ended::Stopped(signal) => {
            tracing::info!(
                signal = crate::signals::name(signal).as_str(),
                "stop signal while waiting for dependencies: the app was not started"
            );
            Err(Failure::quiet(
                exit::SIGNAL_BASE.saturating_add(u8::try_from(signal).unwrap_or(0)),
            ))
        }
        Ended::Done => {
            let after = format!(" is not ready after {}", format_duration(timeout));
            run.report(&after);
            Err(Failure::new(
                exit::UNAVAILABLE,
                "dependencies not ready: the app was not started (exit 69)",
            ))
        }
    }
}

/// One attempt per target, all at once, bounded by `checks.timeout`: 0 when
/// all are ready, 1 otherwise with one error line per target that is not.
pub fn probe(checks: &Checks) -> u8 {
    let mut run = Run::new(&checks.targets, false);
    run.go(Instant::now() + checks.timeout, None, 0);
    u8::from(run.report(""))
}
