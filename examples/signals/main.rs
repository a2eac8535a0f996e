//! `cargo run --example signals`: a tiny application that prints every
//! signal it receives, with its pid and process group, so you can see what
//! envinit forwards (everything), rewrites (`--rewrite`) and groups
//! (`--signal-group`). Not part of envinit: an app, written the way an app
//! may be, with signal-hook's iterator and anyhow.
//!
//! ```text
//! signals [--workers N] [--ignore-stop]
//! ```
//!
//! - Prints `main pid=P pgid=G: ready`, then one line per signal:
//!   `main pid=P pgid=G: SIGHUP (1)`.
//! - `--workers N` starts N copies of itself in the same process group
//!   (`worker pid=... pgid=...`), like a server with worker processes: with
//!   `--signal-group` they receive what the main process receives.
//! - A stop signal (SIGTERM, SIGINT, SIGQUIT) ends the process with exit
//!   code 128+N, as the default action would be reported; `--ignore-stop`
//!   prints it and carries on (to watch envinit's grace period and SIGKILL).

use std::process::{Child, Command};

use anyhow::{Context, Result, bail};
use nix::libc;
use signal_hook::iterator::Signals;
use signal_hook::low_level::signal_name;

/// Signals signal-hook cannot or must not handle.
const UNHANDLED: [libc::c_int; 6] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
    // Not asked for by anyone: a worker's exit would only add noise.
    libc::SIGCHLD,
];

struct Options {
    workers: usize,
    ignore_stop: bool,
    role: &'static str,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options> {
    let mut options = Options {
        workers: 0,
        ignore_stop: false,
        role: "main",
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => {
                let n = args.next().context("--workers needs a number")?;
                options.workers = n
                    .parse()
                    .with_context(|| format!("--workers {n:?}: not a number"))?;
            }
            "--ignore-stop" => options.ignore_stop = true,
            "--worker" => options.role = "worker",
            other => {
                bail!("unknown argument {other:?} (usage: signals [--workers N] [--ignore-stop])")
            }
        }
    }
    Ok(options)
}

fn every_catchable_signal() -> Vec<libc::c_int> {
    (1..=libc::SIGRTMAX())
        .filter(|s| !UNHANDLED.contains(s))
        // 32 and 33 (and 34 under musl) are the C library's own.
        .filter(|&s| s < 32 || s >= libc::SIGRTMIN())
        .collect()
}

fn name(signal: libc::c_int) -> String {
    match signal_name(signal) {
        Some(name) => name.to_string(),
        None => format!("SIGRTMIN+{}", signal - libc::SIGRTMIN()),
    }
}

fn main() -> Result<()> {
    let options = parse(std::env::args().skip(1))?;
    // Registered before anything else: no signal is lost after "ready".
    let mut signals =
        Signals::new(every_catchable_signal()).context("cannot install the signal handlers")?;
    let me = format!(
        "{:<6} pid={} pgid={}",
        options.role,
        std::process::id(),
        nix::unistd::getpgrp()
    );

    println!("{me}: ready");
    let exe = std::env::current_exe().context("cannot find my own executable")?;
    let mut workers: Vec<Child> = Vec::new();
    for _ in 0..options.workers {
        let mut worker = Command::new(&exe);
        worker.arg("--worker");
        if options.ignore_stop {
            worker.arg("--ignore-stop");
        }
        workers.push(
            worker
                .spawn()
                .with_context(|| format!("cannot start a worker ({})", exe.display()))?,
        );
    }

    for signal in signals.forever() {
        println!("{me}: {} ({signal})", name(signal));
        let stop = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT].contains(&signal);
        if stop && !options.ignore_stop {
            // Workers are left to whoever reaps orphans: envinit stops them.
            std::process::exit(128 + signal);
        }
    }
    Ok(())
}
