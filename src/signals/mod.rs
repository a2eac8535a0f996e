//! Signals: their names and numbers, and ([`intake`]) how envinit takes
//! them in.
//!
//! This file: parsing what users write (`TERM`, `SIGTERM`, `15`,
//! `RTMIN+2`), naming numbers in log lines, and which signals ask the
//! container to stop. Pure functions; sending signals is the
//! supervisor's job, receiving them [`intake`]'s.
//!
//! Real-time signals are numbered as `kill -l` on a glibc system and Docker
//! number them, whatever C library envinit is built with: `RTMIN` is 34,
//! `RTMAX` 64, `RTMIN+N` is 34+N and `RTMAX-N` 64-N (musl would say 35 for
//! RTMIN). Names in logs follow `kill -l`: 34-49 are `SIGRTMIN+N`, 50-64
//! `SIGRTMAX-N`; 32 and 33 have no name (`signal 32`).

pub mod intake;

use nix::libc;

/// Is `signal`, as received, one that asks the container to stop
/// (SIGTERM, SIGINT, SIGQUIT)?
pub fn is_stop(signal: i32) -> bool {
    matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT)
}

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

/// `RTMIN` as glibc, `kill -l` and Docker number it (musl's is 35).
pub const RTMIN: i32 = 34;

/// `RTMAX`: the last signal Linux has.
pub const RTMAX: i32 = 64;

/// Where `kill -l` switches from `RTMIN+N` to `RTMAX-N` names.
const RTMID: i32 = (RTMIN + RTMAX) / 2;

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
        realtime_offset(rest, RTMIN, 1)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        realtime_offset(rest, RTMAX, -1)
    } else {
        None
    };
    match number {
        Some(n) if (1..=RTMAX).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a signal (use a name such as TERM or SIGQUIT, RTMIN+N, or a number 1-{RTMAX})"
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
    (RTMIN..=RTMAX).contains(&signal).then_some(signal)
}

/// A signal's name for log lines, as `kill -l` names it with `SIG` before
/// it: `SIGTERM`, `SIGRTMIN`, `SIGRTMIN+2`, `SIGRTMAX-1`, or `signal 33`.
pub fn name(signal: i32) -> String {
    if let Some((n, _)) = NAMES.iter().find(|(_, s)| *s == signal) {
        format!("SIG{n}")
    } else if signal == RTMIN {
        "SIGRTMIN".to_string()
    } else if (RTMIN..=RTMID).contains(&signal) {
        format!("SIGRTMIN+{}", signal - RTMIN)
    } else if signal == RTMAX {
        "SIGRTMAX".to_string()
    } else if (RTMID..RTMAX).contains(&signal) {
        format!("SIGRTMAX-{}", RTMAX - signal)
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
        assert_eq!(parse("RTMIN"), Ok(34));
        assert_eq!(parse("SIGRTMIN+2"), Ok(36));
        assert_eq!(parse("RTMIN+3"), Ok(37));
        assert_eq!(parse("RTMAX-1"), Ok(63));
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
        assert_eq!(name(34), "SIGRTMIN");
        assert_eq!(name(37), "SIGRTMIN+3");
        assert_eq!(name(50), "SIGRTMAX-14");
        assert_eq!(name(64), "SIGRTMAX");
        assert_eq!(name(32), "signal 32");
        assert_eq!(name(0), "signal 0");
    }

    /// Every number 1-64 against bash's `kill -l N` (bash built on glibc,
    /// as Docker and procps name them): same name, and the name parses back.
    #[test]
    fn names_round_trip_against_kill_l() {
        let Ok(out) = std::process::Command::new("bash")
            .args([
                "-c",
                "for n in $(seq 1 64); do echo \"$n $(kill -l $n 2>/dev/null)\"; done",
            ])
            .output()
        else {
            panic!("bash is needed for this test");
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut checked = 0;
        for line in text.lines() {
            let (n, kill_name) = line.split_once(' ').unwrap_or((line, ""));
            let n: i32 = n.parse().unwrap();
            if kill_name.is_empty() {
                assert!(matches!(n, 32 | 33), "kill -l names nothing for {n}");
                assert_eq!(name(n), format!("signal {n}"));
                continue;
            }
            assert_eq!(name(n), format!("SIG{kill_name}"), "signal {n}");
            assert_eq!(parse(kill_name), Ok(n), "{kill_name}");
            assert_eq!(parse(&name(n)), Ok(n), "{kill_name}");
            checked += 1;
        }
        assert_eq!(checked, 62);
    }

    #[test]
    fn every_name_round_trips() {
        for (n, s) in NAMES {
            assert_eq!(parse(n), Ok(*s));
            assert_eq!(parse(&name(*s)), Ok(*s));
        }
    }
}
