//! Exit: how envinit ends. The child's own code passes through; these are
//! the codes envinit uses for its own failures (sysexits and the shell's
//! conventions), documented in docs/exit-codes.md, the one error type every
//! phase returns ([`Failure`]: the lines to print and the code to exit
//! with), the `--remap-exit` rules ([`Remaps`]), and the one way an OS error
//! is put into words ([`reason`], [`errno_text`]).
//!
//! A leaf: it imports no other module of envinit.

use std::fmt;

use nix::errno::Errno;

/// A usage error on the command line (EX_USAGE).
pub const USAGE: u8 = 64;
/// A dependency named by `--wait` was not ready in time; the app was not
/// started (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// An operating-system call envinit needs for setup failed (EX_OSERR).
pub const OS_ERROR: u8 = 71;
/// A configuration error: a bad `ENVINIT_*` value, or a template or ini
/// file that could not be rendered (EX_CONFIG).
pub const CONFIG: u8 = 78;
/// The command was found but could not be executed (as in POSIX shells).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found (as in POSIX shells).
pub const NOT_FOUND: u8 = 127;
/// Added to a signal number when the child was killed by that signal.
pub const SIGNAL_BASE: u8 = 128;

/// Why a start ended before (or instead of) the app's own end: one line
/// per problem, each saying what is wrong and how to fix it, and the exit
/// code it earns. A phase that finds several problems (every bad template
/// line) reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The documented exit code (64, 69, 71, 78, 126, 127, or 128+N when a
    /// stop signal ended the start).
    pub code: u8,
    /// The lines to print, in order; empty when there is nothing to say (a
    /// stop signal during the wait, which is not an error).
    pub problems: Vec<String>,
}

impl Failure {
    /// One problem.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            problems: vec![message.into()],
        }
    }

    /// Several problems, one line each.
    pub fn all(code: u8, problems: Vec<String>) -> Failure {
        Failure { code, problems }
    }

    /// An end with nothing to report (the code says it all).
    pub fn quiet(code: u8) -> Failure {
        Failure {
            code,
            problems: Vec::new(),
        }
    }

    /// The first (usually the only) line.
    pub fn message(&self) -> &str {
        self.problems.first().map_or("", String::as_str)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

/// A failed system call envinit needs before the app runs: exit 71, with
/// what failed and the OS's words (`fork failed: Resource temporarily
/// unavailable`).
pub fn os_failure(what: &str, errno: Errno) -> Failure {
    Failure::new(OS_ERROR, format!("{what} failed: {}", errno.desc()))
}

/// An I/O error as the OS says it (`No such file or directory`), not in
/// Rust's `ErrorKind` wording (`entity not found`).
pub fn reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => Errno::from_raw(errno).desc().to_string(),
        None => e.to_string(),
    }
}

/// The OS's words for the errno of the last failed call.
pub fn errno_text() -> &'static str {
    Errno::last().desc()
}

/// `--remap-exit CODE[:NEW]`: rewrites of the final code, first match
/// wins. Applied once, to whatever code ends a start whose settings were
/// read (the app's, 128+N, or envinit's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remaps(pub Vec<(u8, u8)>);

impl Remaps {
    /// The code to exit with for `code`.
    pub fn apply(&self, code: u8) -> u8 {
        self.0
            .iter()
            .find(|(from, _)| *from == code)
            .map_or(code, |(_, to)| *to)
    }
}

/// Parses `CODE:NEW` or `CODE` (meaning `CODE:0`).
pub fn parse_remap(text: &str) -> Result<(u8, u8), String> {
    let code = |t: &str| -> Result<u8, String> {
        t.trim()
            .parse()
            .map_err(|_| format!("{t:?} is not an exit code 0-255 (write e.g. 143:0)"))
    };
    match text.split_once(':') {
        Some((from, to)) => Ok((code(from)?, code(to)?)),
        None => Ok((code(text)?, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaps() {
        assert_eq!(parse_remap("143"), Ok((143, 0)));
        assert_eq!(parse_remap("143:1"), Ok((143, 1)));
        assert!(parse_remap("256").is_err());
        assert!(parse_remap("1:x").is_err());
        let remaps = Remaps(vec![(143, 0), (143, 9), (78, 3)]);
        assert_eq!(remaps.apply(143), 0, "the first match wins");
        assert_eq!(remaps.apply(78), 3);
        assert_eq!(remaps.apply(1), 1);
    }

    #[test]
    fn os_words() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(reason(&e), "No such file or directory");
        let f = os_failure("fork", Errno::ENOENT);
        assert_eq!(f.code, OS_ERROR);
        assert_eq!(f.message(), "fork failed: No such file or directory");
    }
}
