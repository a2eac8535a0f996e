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

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::exit::{self, Failure};
use crate::options::{Given, format_duration, parse_duration};
use crate::signals::intake::Signals;

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

/// One URL to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as written (used in every message).
    pub url: String,
    /// What to check.
    pub kind: Kind,
}

/// What a URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A TCP connection to `host:port`.
    Tcp {
        /// A name or an IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// A connection to a unix socket.
    Unix(PathBuf),
    /// The path exists.
    File(PathBuf),
    /// `GET path` answered with 2xx.
    Http {
        /// A name or an IP address (IPv6 without brackets).
        host: String,
        /// The port (80 unless given).
        port: u16,
        /// The Host header: the URL's authority as written.
        authority: String,
        /// Path and query, starting with `/`.
        path: String,
    },
}

/// Parses one `--wait`/`--probe` URL; the error says what is wrong.
pub fn parse(url: &str) -> Result<Target, String> {
    match parse_kind(url) {
        Ok(kind) => Ok(Target {
            url: url.to_string(),
            kind,
        }),
        Err(problem) => Err(format!("{url:?}: {problem}")),
    }
}

fn parse_kind(url: &str) -> Result<Kind, &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or(
        "not a URL: write tcp://HOST:PORT, http://HOST[:PORT]/PATH, unix:///PATH or file:///PATH",
    )?;
    let scheme = scheme.to_ascii_lowercase();
    Ok(match scheme.as_str() {
        "tcp" => {
            let (host, port) = host_port(rest.strip_suffix('/').unwrap_or(rest), None)?;
            Kind::Tcp { host, port }
        }
        "http" => {
            let rest = rest.split('#').next().unwrap_or(rest);
            let cut = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(cut);
            let (host, port) = host_port(authority, Some(80))?;
            if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err("the path holds a space or control character: percent-encode it");
            }
            let slash = if path.starts_with('/') { "" } else { "/" };
            Kind::Http {
                host,
                port,
                authority: authority.to_string(),
                path: format!("{slash}{path}"),
            }
        }
        "https" => {
            return Err(
                "https is not supported (envinit has no TLS): check the plain HTTP port, or tcp://HOST:443",
            );
        }
        "unix" if rest.starts_with('/') && !rest.contains('\0') => {
            Kind::Unix(socket_path(rest)?.into())
        }
        "file" if rest.starts_with('/') && !rest.contains('\0') => Kind::File(rest.into()),
        "unix" | "file" => return Err("give an absolute path, e.g. unix:///run/app.sock"),
        _ => {
            return Err(
                "unknown scheme: write tcp://HOST:PORT, http://HOST[:PORT]/PATH, unix:///PATH or file:///PATH",
            );
        }
    })
}

/// Checks a `unix://` path (absolute, no NUL): it must be able to name a
/// socket, so not the root, a directory (`/`, `.` or `..` at the end), or
/// more than a socket address holds. (A directory would be waited on until
/// the timeout, refused as "connection refused".)
fn socket_path(path: &str) -> Result<&str, &'static str> {
    let last = path.rsplit('/').next().unwrap_or("");
    if path.bytes().all(|b| b == b'/') {
        return Err("names the root directory, not a socket: write unix:///PATH/TO/SOCKET");
    }
    if last.is_empty() || last == "." || last == ".." {
        return Err("names a directory, not a socket: drop the trailing / (unix:///run/app.sock)");
    }
    // sockaddr_un's sun_path: 108 bytes with the NUL.
    if path.len() > 107 {
        return Err("a unix socket path holds at most 107 bytes (the kernel's sockaddr_un)");
    }
    Ok(path)
}

/// `host:port`, `[v6]:port`, or without the port when there is a default.
fn host_port(authority: &str, default_port: Option<u16>) -> Result<(String, u16), &'static str> {
    if authority.contains('@') {
        return Err("user names and passwords in URLs are not supported");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("not an IPv6 address between [ ]");
        }
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
            ),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_';
        if host.is_empty() || !host.bytes().all(valid) {
            return Err("not a host name or address (letters, digits, '.', '-', '_')");
        }
        (host, port)
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("not a port (1-65535)")?,
        (None, Some(p)) => p,
        (None, None) => return Err("the port is missing (HOST:PORT)"),
    };
    Ok((host.to_string(), port))
}

/// Waits until every target is ready (exit codes as `Err`: 69 when the
/// wait times out, 128+N when stop signal N arrives). Logs one info line per
/// dependency when it is ready, one warning every [`WARN_EVERY`] while some
/// are not, and one error line per dependency still down at the end.
pub fn wait_for(checks: &Checks, signals: &Signals) -> Result<(), Failure> {
    let mut run = Run::new(&checks.targets, true);
    match run.go(Instant::now() + checks.timeout, Some(signals)) {
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
            let after = format!(" is not ready after {}", format_duration(checks.timeout));
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
    run.go(Instant::now() + checks.timeout, None);
    u8::from(run.report(""))
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a run of checks ended.
enum Ended {
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

struct Run<'a> {
    checks: Vec<Check<'a>>,
    retry: bool,
}

impl<'a> Run<'a> {
    fn new(targets: &'a [Target], retry: bool) -> Run<'a> {
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
    fn report(&self, after: &str) -> bool {
        let mut any = false;
        for check in self.down() {
            tracing::error!("{}{after}: {}", check.target.url, check.reason);
            any = true;
        }
        any
    }

    fn down(&self) -> impl Iterator<Item = &Check<'a>> {
        self.checks
            .iter()
            .filter(|c| !matches!(c.step, Step::Ready))
    }

    /// Runs the checks until all are ready, `deadline`, a stop signal, or
    /// (probe) every attempt has ended.
    fn go(&mut self, deadline: Instant, signals: Option<&Signals>) -> Ended {
        let started = Instant::now();
        let mut next_warn = started + WARN_EVERY;
        loop {
            let now = Instant::now();
            for check in &mut self.checks {
                match check.step {
                    Step::Idle(at) if at <= now => {
                        let limit = if self.retry {
                            deadline.min(now + ATTEMPT_TIMEOUT)
                        } else {
                            deadline
                        };
                        check.start(now, limit, self.retry);
                    }
                    Step::Connecting { .. } | Step::Reading { .. } if check.until <= now => {
                        check.fail("timed out".into(), now, self.retry);
                    }
                    _ => {}
                }
            }
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
                let waiting: Vec<String> = self
                    .down()
                    .map(|c| format!("{} ({})", c.target.url, c.reason))
                    .collect();
                tracing::warn!(
                    waited = format_duration(round_ms(now - started)).as_str(),
                    "still waiting for {}",
                    waiting.join(", ")
                );
                next_warn += WARN_EVERY;
            }

            // Sleep until an fd is ready or the next timer.
            let mut wake = deadline;
            if self.retry {
                wake = wake.min(next_warn);
            }
            for c in &self.checks {
                match c.step {
                    Step::Idle(at) => wake = wake.min(at),
                    Step::Ready | Step::Failed => {}
                    _ => wake = wake.min(c.until),
                }
            }
            let millis = wake
                .saturating_duration_since(now)
                .as_micros()
                .div_ceil(1000);
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
            let woken: Vec<usize> = fds[skip..]
                .iter()
                .zip(&owners)
                .filter(|(fd, _)| ready(fd))
                .map(|(_, i)| *i)
                .collect();
            drop(fds);
            if signalled {
                if let Some(stop) = signals.and_then(Signals::stop_before_spawn) {
                    return Ended::Stopped(stop);
                }
            }
            let now = Instant::now();
            for i in woken {
                self.checks[i].advance(now, self.retry);
            }
        }
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

/// An OS error as the OS says it, lower-cased: "connection refused".
fn os_text(e: &io::Error) -> String {
    crate::exit::reason(e).to_ascii_lowercase()
}

/// A non-blocking TCP connect to `addr`: the stream and whether it is
/// already connected (else the connect is in progress).
fn connect_tcp(addr: SocketAddr) -> io::Result<(TcpStream, bool)> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes plain integers and returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a socket just created and owned by nobody else.
    let stream = TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sin is a valid sockaddr_in of the length given.
            unsafe {
                libc::connect(
                    fd,
                    (&raw const sin).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sin6 is a valid sockaddr_in6 of the length given.
            unsafe {
                libc::connect(
                    fd,
                    (&raw const sin6).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc == 0 {
        return Ok((stream, true));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok((stream, false))
    } else {
        Err(e)
    }
}

/// Connects to a unix socket (completes or fails at once).
fn connect_unix(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= sun.sun_path.len() {
        return Err("the socket path is longer than 107 bytes".into());
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: socket takes plain integers and returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(os_text(&io::Error::last_os_error()));
    }
    // SAFETY: fd is a socket just created and owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sun is a valid sockaddr_un of the length given.
    let rc = unsafe {
        libc::connect(
            fd,
            (&raw const sun).cast(),
            size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    let result = if rc == 0 {
        Ok(())
    } else {
        Err(os_text(&io::Error::last_os_error()))
    };
    drop(owned);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(url: &str) -> Kind {
        parse(url).unwrap().kind
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            kind("tcp://db:5432"),
            Kind::Tcp {
                host: "db".into(),
                port: 5432
            }
        );
        assert_eq!(
            kind("tcp://[::1]:80/"),
            Kind::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        assert_eq!(
            kind("http://web"),
            Kind::Http {
                host: "web".into(),
                port: 80,
                authority: "web".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            kind("HTTP://127.0.0.1:8080/healthz?full=1#x"),
            Kind::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                authority: "127.0.0.1:8080".into(),
                path: "/healthz?full=1".into()
            }
        );
        assert_eq!(
            kind("http://[::1]:81?q"),
            Kind::Http {
                host: "::1".into(),
                port: 81,
                authority: "[::1]:81".into(),
                path: "/?q".into()
            }
        );
        assert_eq!(kind("unix:///run/a.sock"), Kind::Unix("/run/a.sock".into()));
        // The longest path a socket address holds (107 bytes), and one more.
        let longest = format!("/{}", "a".repeat(106));
        assert_eq!(
            kind(&format!("unix://{longest}")),
            Kind::Unix(longest.clone().into())
        );
        let e = parse(&format!("unix://{longest}b")).unwrap_err();
        assert!(e.contains("at most 107 bytes"), "{e}");
        // file:// takes any path: a directory may be what is awaited.
        assert_eq!(kind("file:///"), Kind::File("/".into()));
        assert_eq!(kind("file:///run/"), Kind::File("/run/".into()));
        assert_eq!(kind("file:///tmp/ready"), Kind::File("/tmp/ready".into()));
        assert_eq!(parse("tcp://a:1").unwrap().url, "tcp://a:1");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("db:5432", "not a URL"),
            ("tcp://db", "port is missing"),
            ("tcp://db:0", "not a port"),
            ("tcp://db:65536", "not a port"),
            ("tcp://:80", "not a host name"),
            ("tcp://a b:80", "not a host name"),
            ("http://u:p@h/", "passwords"),
            ("https://h/", "https is not supported"),
            ("unix://rel.sock", "absolute path"),
            ("unix://", "absolute path"),
            ("unix:///", "root directory"),
            ("unix:////", "root directory"),
            ("unix:///run/", "names a directory"),
            ("unix:///run/app.sock/", "names a directory"),
            ("unix:///run/.", "names a directory"),
            ("unix:///run/..", "names a directory"),
            ("file://", "absolute path"),
            ("ftp://h/", "unknown scheme"),
            ("http://h/a b", "percent-encode"),
            ("http://h/a\r\nX: y", "percent-encode"),
            ("http://[::1/", "closing ]"),
            ("http://[nope]/", "not an IPv6"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

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
            run.go(Instant::now() + Duration::from_secs(5), None),
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
