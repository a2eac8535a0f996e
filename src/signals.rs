//! Signal names and numbers: parsing what users write (`TERM`, `SIGTERM`,
//! `15`, `RTMIN+2`) and naming numbers in log lines. Pure functions; sending
//! signals is the supervisor's job.

use nix::libc;

/// The standard signals by name, without the `SIG` prefix (Linux x86_64).
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The first real-time signal as this binary's C library numbers it
/// (35 under musl, 34 under glibc: both reserve the lowest ones).
pub fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The last real-time signal (64 on Linux).
pub fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

/// Parses a signal as users write it: a name with or without `SIG`, in any
/// case (`TERM`, `SIGterm`), `RTMIN`, `RTMIN+N`, `RTMAX-N`, or a number.
pub fn parse(text: &str) -> Result<i32, String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = if let Ok(n) = name.parse::<i32>() {
        Some(n)
    } else if let Some((_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
        Some(*n)
    } else if let Some(rest) = name.strip_prefix("RTMIN") {
        realtime_offset(rest, rtmin(), 1)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        realtime_offset(rest, rtmax(), -1)
    } else {
        None
    };
    match number {
        Some(n) if (1..=rtmax()).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a signal (use a name such as TERM or SIGQUIT, RTMIN+N, or a number 1-{})",
            rtmax()
        )),
    }
}

/// `""`, `"+N"` (for RTMIN) or `"-N"` (for RTMAX) relative to `base`.
fn realtime_offset(rest: &str, base: i32, direction: i32) -> Option<i32> {
    if rest.is_empty() {
        return Some(base);
    }
    let sign = if direction > 0 { '+' } else { '-' };
    let n: i32 = rest.strip_prefix(sign)?.parse().ok()?;
    let signal = base + direction * n;
    (rtmin()..=rtmax()).contains(&signal).then_some(signal)
}

/// A signal's name for log lines: `SIGTERM`, `SIGRTMIN+2`, or `signal 33`.
pub fn name(signal: i32) -> String {
    if let Some((n, _)) = NAMES.iter().find(|(_, s)| *s == signal) {
        format!("SIG{n}")
    } else if (rtmin()..=rtmax()).contains(&signal) {
        match signal - rtmin() {
            0 => "SIGRTMIN".to_string(),
            n => format!("SIGRTMIN+{n}"),
        }
    } else {
        format!("signal {signal}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_every_spelling() {
        assert_eq!(parse("TERM"), Ok(15));
        assert_eq!(parse("SIGTERM"), Ok(15));
        assert_eq!(parse("sigquit"), Ok(3));
        assert_eq!(parse(" winch "), Ok(28));
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("RTMIN"), Ok(rtmin()));
        assert_eq!(parse("SIGRTMIN+2"), Ok(rtmin() + 2));
        assert_eq!(parse("RTMAX-1"), Ok(rtmax() - 1));
        assert_eq!(parse("RTMAX"), Ok(64));
    }

    #[test]
    fn rejects_what_is_not_a_signal() {
        for bad in [
            "", "TERMX", "0", "65", "-1", "RTMIN+99", "RTMAX+1", "RTMIN-1", "SIG",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_for_logs() {
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(rtmin()), "SIGRTMIN");
        assert_eq!(name(rtmin() + 3), "SIGRTMIN+3");
        assert_eq!(name(0), "signal 0");
    }

    #[test]
    fn every_name_round_trips() {
        for (n, s) in NAMES {
            assert_eq!(parse(n), Ok(*s));
            assert_eq!(parse(&name(*s)), Ok(*s));
        }
    }
}
