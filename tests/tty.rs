//! envinit on a terminal, as `docker run -it` gives it (issue 2): the test
//! opens a pseudo-terminal and starts `setsid --ctty unshare --pid --fork
//! --mount-proc envinit -- CHILD` with the pty's slave as stdin, stdout and
//! stderr and as the controlling terminal, then types into the master:
//! Ctrl-C must reach the child exactly once, an interactive shell must work,
//! and a child stopped by Ctrl-Z must not make a later stop hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    EVENT_TIMEOUT, Mode, RUN_TIMEOUT, Running, have_setsid, have_unshare, py_child, sig, stat,
    wait_until,
};
use nix::fcntl::OFlag;
use nix::libc;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

const PROMPTLY: Duration = Duration::from_secs(10);

/// A started envinit on a fresh pty, and the master side to type into.
struct Tty {
    run: Running,
    master: File,
}

impl Tty {
    /// Opens a pty (both ends close-on-exec, so no other test's child holds
    /// them) and starts envinit on it as PID 1 with `args`.
    fn start(args: &[OsString]) -> Tty {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave_path = ptsname_r(&master).unwrap();
        let master = File::from(OwnedFd::from(master));
        // std opens with O_CLOEXEC; the spawn dups it onto 0, 1, 2.
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&slave_path)
            .unwrap();
        let mut command = Command::new("setsid");
        command
            .args(["--ctty", "unshare", "--pid", "--fork", "--mount-proc"])
            .arg(common::envinit())
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // The harness drops the parent's copies of the slave after the
        // spawn: the master reads EOF (EIO) once the last process on the
        // terminal is gone.
        let run = Running::adopt(
            command,
            Mode::Pid1,
            RUN_TIMEOUT,
            master.try_clone().unwrap(),
        );
        Tty { run, master }
    }

    /// Types `bytes` on the terminal.
    fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Waits for a line ending with `end` (a prompt or an echoed ^C may
    /// come first on a terminal).
    fn wait_line_end(&self, end: &str) {
        self.run
            .wait_stdout(&format!("a line ending {end:?}"), |text| {
                common::lines(text).any(|l| l.ends_with(end))
            });
    }

    /// Waits until `pid` is in the terminal's foreground process group.
    fn wait_foreground(&self, pid: i32) {
        wait_until(
            &format!("pid {pid} to be the terminal's foreground process group"),
            EVENT_TIMEOUT,
            || stat(pid).filter(|s| s.tpgid == s.pgrp).map(|_| ()),
        );
    }
}

fn skip() -> bool {
    !(have_unshare() && have_setsid())
}

#[test]
fn ctrl_c_reaches_the_child_exactly_once() {
    if skip() {
        return;
    }
    let Some(child) = py_child("report", &["--exit-on", "10"]) else {
        return;
    };
    let mut args: Vec<OsString> = vec!["--".into()];
    args.extend(child);
    let mut tty = Tty::start(&args);
    tty.run.wait_line("ready");
    let python = common::python().unwrap();
    let comm: String = python
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    let child = tty.run.main_child(&comm);
    tty.wait_foreground(child);
    let init = tty.run.init_pid();
    assert_ne!(
        stat(init).unwrap().pgrp,
        stat(child).unwrap().pgrp,
        "envinit shares the child's (foreground) process group"
    );

    tty.type_in(b"\x03");
    // From the kernel (the terminal), not forwarded by envinit (pid 1). The
    // terminal echoes "^C" before it, on the same line.
    tty.wait_line_end("sig 2 from 0");
    // USR1 goes through envinit after the Ctrl-C: had envinit also got and
    // forwarded the SIGINT, it would reach the child before this USR1.
    tty.run.signal(sig::USR1);
    tty.wait_line_end("sig 10 from 1");
    let out = tty.run.wait();
    out.assert_code(0);
    let text = out.out();
    let ints = text.matches("sig 2 from").count();
    assert_eq!(
        ints,
        1,
        "Ctrl-C reached the child {ints} times\n{}",
        out.describe()
    );
    assert_eq!(text.matches("sig 2 from 0").count(), 1);
}

#[test]
fn an_interactive_shell_works_under_envinit() {
    if skip() {
        return;
    }
    let mut tty = Tty::start(&["--".into(), "sh".into(), "-i".into()]);
    tty.type_in(b"echo $((6*7))\n");
    // The answer follows the shell's prompt; the echoed command has no 42.
    tty.wait_line_end("42");
    tty.type_in(b"exit 5\n");
    let out = tty.run.wait();
    out.assert_code(5);
    assert!(
        !out.out().contains("Stopped") && !out.out().contains("can't access tty"),
        "{}",
        out.describe()
    );
}

#[test]
fn ctrl_z_then_term_does_not_hang() {
    if skip() {
        return;
    }
    let mut tty = Tty::start(&[
        "--grace".into(),
        "60s".into(),
        "sleep".into(),
        "1000".into(),
    ]);
    let child = tty.run.main_child("sleep");
    tty.wait_foreground(child);
    tty.type_in(b"\x1a");
    wait_until("Ctrl-Z to stop the child", EVENT_TIMEOUT, || {
        stat(child).filter(|s| s.state == 'T').map(|_| ())
    });
    let sent = Instant::now();
    tty.run.signal(sig::TERM);
    let out = tty.run.wait();
    out.assert_code(143);
    assert!(
        sent.elapsed() < PROMPTLY,
        "the stop took {:?}\n{}",
        sent.elapsed(),
        out.describe()
    );
}
