//! The check engine: every `--wait`/`--probe` target as a small state
//! machine (idle, connecting, reading the HTTP status line, ready,
//! failed), all of them and the signalfd watched by one `poll`, with
//! retries that back off. No threads; only name resolution blocks.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::connect::{connect_tcp, connect_unix, os_text};
use super::url::{Kind, Target};
use super::{ATTEMPT_TIMEOUT, FIRST_RETRY, MAX_RETRY, MAX_STATUS_LINE, WARN_EVERY};
use crate::options::format_duration;
use crate::signals::intake::Signals;

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a run of checks ended.
pub(super) enum Ended {
    AllReady,
    /// Timed out (retrying) or every attempt made (probe).
    Done,
    Stopped(i32),
}

/// Where one check stands.
enum Step {
    /// The next attempt starts at this time.
    Idle(Instant),
    /// A TCP connect in flight; `next` is the next address to try if it fails.
    Connecting {
        stream: TcpStream,
        addrs: Vec<SocketAddr>,
        next: usize,
    },
    /// Reading the HTTP status line.
    Reading {
        stream: TcpStream,
        got: Vec<u8>,
    },
    Ready,
    /// Failed, no retry (probe).
    Failed,
}

struct Check<'a> {
    target: &'a Target,
    step: Step,
    /// Why the last attempt failed.
    reason: String,
    /// Why the addresses tried so far in this attempt failed.
    tried: Option<String>,
    /// The end of the attempt in flight.
    until: Instant,
    backoff: Duration,
}

pub(super) struct Run<'a> {
    checks: Vec<Check<'a>>,
    retry: bool,
}

impl<'a> Run<'a> {
    pub(super) fn new(targets: &'a [Target], retry: bool) -> Run<'a> {
        let now = Instant::now();
        Run {
            checks: targets
                .iter()
                .map(|target| Check {
                    target,
                    step: Step::Idle(now),
                    reason: "not checked yet".into(),
                    tried: None,
                    until: now,
                    backoff: FIRST_RETRY,
                })
                .collect(),
            retry,
        }
    }

    /// One error line per check that is not ready: `URL<after>: reason`.
    /// True if there was one.
    pub(super) fn report(&self, after: &str) -> bool {
        let mut any = false;
        for check in self.down() {
            crate::logging::error(&format!("{}{after}: {}", check.target.url, check.reason));
            any = true;
        }
        any
    }

    fn down(&self) -> impl Iterator<Item = &Check<'a>> {
        self.checks
            .iter()
            .filter(|c| !matches!(c.step, Step::Ready))
    }

    /// Runs the checks until all are ready, `deadline`, a stop signal (or
    /// `also`, unless 0), or (probe) every attempt has ended.
    pub(super) fn go(&mut self, deadline: Instant, signals: Option<&Signals>, also: i32) -> Ended {
        let started = Instant::now();
        let mut next_warn = started + WARN_EVERY;
        loop {
            let now = Instant::now();
            self.start_due(now, deadline);
            if self.checks.iter().all(|c| matches!(c.step, Step::Ready)) {
                return Ended::AllReady;
            }
            let settled = self
                .checks
                .iter()
                .all(|c| matches!(c.step, Step::Ready | Step::Failed));
            if settled || now >= deadline {
                return Ended::Done;
            }
            if self.retry && now >= next_warn {
                self.warn_waiting(now - started);
                next_warn += WARN_EVERY;
            }
            let wake = match self.retry {
                true => deadline.min(next_warn),
                false => deadline,
            };
            let (signalled, woken) = self.sleep(now, wake, signals);
            if signalled {
                if let Some(stop) = signals.and_then(|s| s.stop_before_spawn(also)) {
                    return Ended::Stopped(stop);
                }
            }
            let now = Instant::now();
            for i in woken {
                self.checks[i].advance(now, self.retry);
            }
        }
    }

    /// Starts the attempts that are due and times out the ones in flight
    /// past their end.
    fn start_due(&mut self, now: Instant, deadline: Instant) {
        for check in &mut self.checks {
            match check.step {
                Step::Idle(at) if at <= now => {
                    let limit = match self.retry {
                        true => deadline.min(now + ATTEMPT_TIMEOUT),
                        false => deadline,
                    };
                    check.start(now, limit, self.retry);
                }
                Step::Connecting { .. } | Step::Reading { .. } if check.until <= now => {
                    check.fail("timed out".into(), now, self.retry);
                }
                _ => {}
            }
        }
    }

    /// The warning every [`WARN_EVERY`]: what is still awaited, and why.
    fn warn_waiting(&self, waited: Duration) {
        let waiting: Vec<String> = self
            .down()
            .map(|c| format!("{} ({})", c.target.url, c.reason))
            .collect();
        tracing::warn!(
            waited = format_duration(round_ms(waited)).as_str(),
            "still waiting for {}",
            waiting.join(", ")
        );
    }

    /// Sleeps until a socket or the signalfd is ready, or the next timer
    /// (at the latest `wake`). Returns whether a signal came, and the
    /// checks whose socket is ready.
    fn sleep(
        &self,
        now: Instant,
        mut wake: Instant,
        signals: Option<&Signals>,
    ) -> (bool, Vec<usize>) {
        for c in &self.checks {
            match c.step {
                Step::Idle(at) => wake = wake.min(at),
                Step::Ready | Step::Failed => {}
                _ => wake = wake.min(c.until),
            }
        }
        let millis = crate::options::ceil_millis(wake.saturating_duration_since(now));
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = Vec::with_capacity(self.checks.len() + 1);
        let mut owners = Vec::with_capacity(self.checks.len());
        if let Some(s) = signals {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        for (i, c) in self.checks.iter().enumerate() {
            let (stream, flags) = match &c.step {
                Step::Connecting { stream, .. } => (stream, PollFlags::POLLOUT),
                Step::Reading { stream, .. } => (stream, PollFlags::POLLIN),
                _ => continue,
            };
            fds.push(PollFd::new(stream.as_fd(), flags));
            owners.push(i);
        }
        // An error (EINTR) is just one more turn of the loop.
        let _ = poll(&mut fds, timeout);
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let skip = usize::from(signals.is_some());
        let signalled = signals.is_some() && fds.first().is_some_and(ready);
        let woken = fds[skip..]
            .iter()
            .zip(&owners)
            .filter(|(fd, _)| ready(fd))
            .map(|(_, i)| *i)
            .collect();
        (signalled, woken)
    }
}

impl Check<'_> {
    /// Starts an attempt; file and unix checks finish at once.
    fn start(&mut self, now: Instant, until: Instant, retry: bool) {
        self.until = until;
        let result = match &self.target.kind {
            Kind::File(path) => std::fs::symlink_metadata(path)
                .map(drop)
                .map_err(|e| os_text(&e)),
            Kind::Unix(path) => connect_unix(path),
            Kind::Tcp { host, port } | Kind::Http { host, port, .. } => {
                match (host.as_str(), *port).to_socket_addrs() {
                    Ok(addrs) => {
                        let addrs: Vec<SocketAddr> = addrs.collect();
                        if addrs.is_empty() {
                            Err("no such host".into())
                        } else {
                            self.tried = None;
                            self.connect(addrs, 0, now, retry);
                            return;
                        }
                    }
                    Err(_) => Err("no such host".into()),
                }
            }
        };
        match result {
            Ok(()) => self.ready(retry),
            Err(reason) => self.fail(reason, now, retry),
        }
    }

    /// Tries `addrs[next..]` in turn until a connect is under way.
    fn connect(&mut self, addrs: Vec<SocketAddr>, mut next: usize, now: Instant, retry: bool) {
        while let Some(addr) = addrs.get(next) {
            next += 1;
            match connect_tcp(*addr) {
                Ok((stream, true)) => return self.connected(stream, now, retry),
                Ok((stream, false)) => {
                    self.step = Step::Connecting {
                        stream,
                        addrs,
                        next,
                    };
                    return;
                }
                Err(e) => self.tried_one(&e),
            }
        }
        let reason = self.tried.take().unwrap_or_else(|| "no address".into());
        self.fail(reason, now, retry);
    }

    /// Connected: a TCP check is done; an HTTP check sends its request,
    /// in one write (a fresh connection's send buffer takes it whole).
    fn connected(&mut self, mut stream: TcpStream, now: Instant, retry: bool) {
        let request = match &self.target.kind {
            Kind::Http {
                authority, path, ..
            } => format!(
                "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: envinit\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            ),
            _ => return self.ready(retry),
        };
        match stream.write(request.as_bytes()) {
            Ok(n) if n == request.len() => {
                self.step = Step::Reading {
                    stream,
                    got: Vec::new(),
                }
            }
            Ok(_) => self.fail("the request did not fit the socket".into(), now, retry),
            Err(e) => self.fail(os_text(&e), now, retry),
        }
    }

    /// Its socket is ready: carry the attempt on.
    fn advance(&mut self, now: Instant, retry: bool) {
        match std::mem::replace(&mut self.step, Step::Failed) {
            Step::Connecting {
                stream,
                addrs,
                next,
            } => match stream.take_error() {
                Ok(None) => self.connected(stream, now, retry),
                Ok(Some(e)) | Err(e) => {
                    self.tried_one(&e);
                    drop(stream);
                    self.connect(addrs, next, now, retry);
                }
            },
            Step::Reading {
                mut stream,
                mut got,
            } => {
                let mut buf = [0u8; 512];
                match stream.read(&mut buf) {
                    Ok(0) => self.answered(&got, true, now, retry),
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        if got.contains(&b'\n') || got.len() >= MAX_STATUS_LINE {
                            self.answered(&got, false, now, retry);
                        } else {
                            self.step = Step::Reading { stream, got };
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.step = Step::Reading { stream, got }
                    }
                    Err(e) => self.fail(os_text(&e), now, retry),
                }
            }
            other => self.step = other,
        }
    }

    fn answered(&mut self, got: &[u8], closed: bool, now: Instant, retry: bool) {
        match status_of(got) {
            Some(code) if (200..300).contains(&code) => self.ready(retry),
            Some(code) => self.fail(format!("status {code}"), now, retry),
            None if closed && got.is_empty() => {
                self.fail("connection closed without an answer".into(), now, retry)
            }
            None => self.fail("not an HTTP answer".into(), now, retry),
        }
    }

    fn ready(&mut self, retry: bool) {
        self.step = Step::Ready;
        if retry {
            tracing::info!(dependency = self.target.url.as_str(), "ready");
        }
    }

    /// Notes why one address failed. "Address not available" and the like
    /// (an IPv6 address in a container without IPv6) do not hide a better
    /// reason from another address.
    fn tried_one(&mut self, e: &io::Error) {
        let unusable = matches!(
            e.raw_os_error(),
            Some(libc::EADDRNOTAVAIL | libc::ENETUNREACH | libc::EAFNOSUPPORT)
        );
        if self.tried.is_none() || !unusable {
            self.tried = Some(os_text(e));
        }
    }

    fn fail(&mut self, reason: String, now: Instant, retry: bool) {
        tracing::debug!(
            dependency = self.target.url.as_str(),
            reason = reason.as_str(),
            "not ready"
        );
        self.reason = reason;
        if retry {
            self.step = Step::Idle(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_RETRY);
        } else {
            self.step = Step::Failed;
        }
    }
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 204 No Content`).
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::url::{Target, parse};
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2"), None);
        assert_eq!(status_of(b""), None);
    }

    #[test]
    fn probes_report_each_failure() {
        let dir = std::env::temp_dir().join(format!("envinit-wait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let here = format!("file://{}", dir.display());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = format!("tcp://{}", listener.local_addr().unwrap());
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("tcp://{}", l.local_addr().unwrap())
        };
        let targets: Vec<Target> = [
            here.as_str(),
            "file:///nonexistent/envinit",
            open.as_str(),
            closed.as_str(),
            "unix:///nonexistent/envinit.sock",
        ]
        .iter()
        .map(|u| parse(u).unwrap())
        .collect();
        let mut run = Run::new(&targets, false);
        assert!(matches!(
            run.go(Instant::now() + Duration::from_secs(5), None, 0),
            Ended::Done
        ));
        let down: Vec<(String, String)> = run
            .down()
            .map(|c| (c.target.url.clone(), c.reason.clone()))
            .collect();
        assert_eq!(
            down,
            vec![
                (
                    "file:///nonexistent/envinit".to_string(),
                    "no such file or directory".to_string()
                ),
                (closed, "connection refused".to_string()),
                (
                    "unix:///nonexistent/envinit.sock".to_string(),
                    "no such file or directory".to_string()
                ),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
