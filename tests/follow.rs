//! Log files to stdout/stderr (`--stdout FILE`, `--stderr FILE`,
//! `--log-prefix`; issue 7), end to end: envinit as the real PID 1 of a new
//! pid namespace follows files that real apps (python3, sh) write, rotate
//! and truncate, and the lines arrive on its stdout or stderr exactly once
//! and in order. Apps and tests meet at FIFOs ("gates"): the app waits at a
//! gate until the test has seen a line on envinit's stdout, so every step
//! is ordered by events, never by sleeps. Last, the same in a `FROM
//! scratch` Docker image, read back with `docker logs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod engines;

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    EVENT_TIMEOUT, Mode, Running, Spec, TempDir, alive, envinit, have_unshare, python, sig,
    wait_until,
};
use nix::libc;

/// The bound on a copied line (src/follow.rs LINE_MAX, docs/options.md).
const LINE_MAX: usize = 64 * 1024;

/// `python3 -c SCRIPT ARGS...`, or None (skip) without python3.
fn py(script: &str, args: &[&str]) -> Option<Vec<OsString>> {
    let python = python()?;
    let mut command = vec![python.as_os_str().to_owned(), "-c".into(), script.into()];
    command.extend(args.iter().map(OsString::from));
    Some(command)
}

/// envinit's options, `--`, then the command.
fn args(options: &[&str], command: Vec<OsString>) -> Vec<OsString> {
    let mut all: Vec<OsString> = options.iter().map(OsString::from).collect();
    all.push("--".into());
    all.extend(command);
    all
}

/// A FIFO the app waits at until the test opens it.
fn gate(dir: &TempDir, name: &str) -> String {
    let path = dir.join(name);
    nix::unistd::mkfifo(
        path.as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    path
}

/// Lets the app through `gate`: waits (bounded) until the app is reading
/// it, writes one line and closes it.
fn open_gate(path: &str) {
    let mut gate = wait_until(&format!("the app to wait at {path}"), EVENT_TIMEOUT, || {
        // Without a reader yet, a non-blocking open for writing fails (ENXIO).
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .ok()
    });
    std::io::Write::write_all(&mut gate, b"go\n").unwrap();
}

/// The text of `line {i:06}` lines for `range`, one per line.
fn numbered(range: std::ops::RangeInclusive<u32>) -> String {
    range.map(|i| format!("line {i:06}\n")).collect()
}

/// Where `got` first differs from `want`, line by line, with the line
/// counts and the lines around it: a failure message that says what was
/// lost or repeated even when the output is too long to print whole.
fn first_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let at = g.iter().zip(&w).take_while(|(a, b)| a == b).count();
    let around = |v: &[&str]| v[at.saturating_sub(2)..(at + 3).min(v.len())].join(" | ");
    format!(
        "{} lines, want {}; first difference at line {}: got [{}], want [{}]",
        g.len(),
        w.len(),
        at + 1,
        around(&g),
        around(&w)
    )
}

/// Python helpers shared by the apps below.
const PY_PRELUDE: &str = r#"
import os, sys
def opened(path):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def lines(fd, first, last):
    for i in range(first, last + 1):
        os.write(fd, b"line %06d\n" % i)
def wait(gate):
    with open(gate) as g:
        g.read()
"#;

#[test]
fn rotated_and_truncated_files_give_every_line_once_and_in_order() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-rotate");
    let log = dir.join("app.log");
    let (gate1, gate2) = (gate(&dir, "gate1"), gate(&dir, "gate2"));
    let script = format!(
        r#"{PY_PRELUDE}
log, gate1, gate2 = sys.argv[1:4]
fd = opened(log)
lines(fd, 1, 3000)
os.rename(log, log + ".1")      # rotation: renamed away,
lines(fd, 3001, 3100)           # still written until the app reopens,
new = opened(log)               # then re-created
os.close(fd)
fd = new
lines(fd, 3101, 6000)
wait(gate1)                     # the test has seen line 6000
os.ftruncate(fd, 0)             # truncation (O_APPEND: writes go to 0)
lines(fd, 6001, 6001)
wait(gate2)                     # the test has seen line 6001
lines(fd, 6002, 9000)
os.rename(log, log + ".2")      # a last rotation, and exit at once
fd = opened(log)
lines(fd, 9001, 9500)
os.write(fd, b"no newline at the end")
"#
    );
    let Some(command) = py(&script, &[&log, &gate1, &gate2]) else {
        return;
    };
    let run = Spec::pid1(args(&["--stdout", &log], command))
        .env("ENVINIT_LOG", "warn")
        .start();
    run.wait_line("line 006000");
    open_gate(&gate1);
    run.wait_line("line 006001");
    open_gate(&gate2);
    let out = run.wait();
    out.assert_code(0);
    let want = numbered(1..=9500) + "no newline at the end\n";
    if out.out() != want {
        let got = out.out();
        let first_bad = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "lines lost, repeated or out of order: {} lines, want {}; first difference at line {}: got {:?}\n{}",
            got.lines().count(),
            want.lines().count(),
            first_bad + 1,
            got.lines().nth(first_bad),
            out.describe()
        );
    }
    assert!(
        out.err().is_empty(),
        "a clean run prints nothing: {}",
        out.err()
    );
}

#[test]
fn a_file_and_directory_created_after_the_start_are_followed_live() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-later");
    let log = dir.join("later/deeper/app.log");
    let gate = gate(&dir, "gate");
    let script = format!(
        "mkdir -p {0}/later/deeper && echo first > {log} && read x < {gate} && echo second >> {log}",
        dir.path().display()
    );
    let run = Spec::pid1(["--stdout", &log, "--", "sh", "-c", &script]).start();
    // The app waits at the gate: "first" can only come from following live.
    run.wait_line("first");
    open_gate(&gate);
    let out = run.wait();
    out.assert_code(0);
    assert_eq!(out.out(), "first\nsecond\n", "{}", out.describe());
}

#[test]
fn lines_already_in_the_file_at_the_start_are_not_repeated() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-existing");
    let log = dir.join("app.log");
    std::fs::write(&log, "from the last run\n").unwrap();
    let script = format!("echo new >> {log}");
    let out = Spec::pid1(["--stdout", &log, "--", "sh", "-c", &script]).run();
    out.assert_code(0);
    assert_eq!(out.out(), "new\n", "{}", out.describe());
}

#[test]
fn a_long_line_is_split_at_the_bound_and_nothing_is_lost() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-long");
    let log = dir.join("app.log");
    let len = 3 * LINE_MAX + 8192;
    let script = format!(
        r#"{PY_PRELUDE}
fd = opened(sys.argv[1])
os.write(fd, b"".join(b"%c" % (97 + i % 26) for i in range({len})) + b"\nafter\n")
"#
    );
    let Some(command) = py(&script, &[&log]) else {
        return;
    };
    let out = Spec::pid1(args(&["--stdout", &log], command)).run();
    out.assert_code(0);
    let text = out.out();
    let lines: Vec<&str> = text.lines().collect();
    let lens: Vec<usize> = lines.iter().map(|l| l.len()).collect();
    assert_eq!(
        lens,
        vec![LINE_MAX, LINE_MAX, LINE_MAX, 8192, 5],
        "{lens:?}"
    );
    let long: String = (0..len)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(lines[..4].concat(), long);
    assert_eq!(lines[4], "after");
}

#[test]
fn a_line_of_exactly_n_times_the_bound_adds_no_empty_line() {
    if !have_unshare() {
        return;
    }
    // Lines of exactly 64 KiB and 128 KiB: the `\n` after the last piece
    // ends the line (it was an extra empty line, issue 13).
    let dir = TempDir::new("follow-exact");
    let log = dir.join("app.log");
    let script = format!(
        r#"{PY_PRELUDE}
fd = opened(sys.argv[1])
os.write(fd, b"a" * {LINE_MAX} + b"\n")
os.write(fd, b"b" * {LINE_MAX} * 2 + b"\nafter\n")
"#
    );
    let Some(command) = py(&script, &[&log]) else {
        return;
    };
    let out = Spec::pid1(args(&["--stdout", &log], command)).run();
    out.assert_code(0);
    let text = out.out();
    let lens: Vec<usize> = text.lines().map(str::len).collect();
    assert_eq!(lens, [LINE_MAX, LINE_MAX, LINE_MAX, 5], "{lens:?}");
    assert_eq!(text.lines().last(), Some("after"));
}

#[test]
fn lines_written_just_before_the_exit_are_all_drained() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-drain");
    let log = dir.join("app.log");
    // seq writes in 4 KiB chunks that end mid-line; the app exits at once.
    let script = format!("seq 1 50000 >> {log}; printf 'the end' >> {log}");
    let out = Spec::pid1(["--stdout", &log, "--", "sh", "-c", &script]).run();
    out.assert_code(0);
    let want: String = (1..=50000).map(|i| format!("{i}\n")).collect::<String>() + "the end\n";
    assert!(out.out() == want, "{}", out.describe());
}

#[test]
fn stderr_files_go_to_stderr_and_the_prefix_names_the_file() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-stderr");
    let (out_log, err_log) = (dir.join("app.log"), dir.join("error.log"));
    let script = format!("echo to-out >> {out_log}; echo to-err >> {err_log}");
    let out = Spec::pid1(["--stderr", &err_log, "--", "sh", "-c", &script])
        .env("ENVINIT_STDOUT", &out_log)
        .env("ENVINIT_LOG_PREFIX", "on")
        .env("ENVINIT_LOG", "warn")
        .run();
    out.assert_code(0);
    assert_eq!(out.out(), "app.log: to-out\n", "{}", out.describe());
    assert_eq!(out.err(), "error.log: to-err\n", "{}", out.describe());

    // Without the prefix, the lines are copied as they are.
    let out = Spec::pid1(["--stderr", &err_log, "--", "sh", "-c", &script])
        .env("ENVINIT_LOG", "warn")
        .run();
    out.assert_code(0);
    assert_eq!(out.out(), "", "{}", out.describe());
    assert_eq!(out.err(), "to-err\n", "{}", out.describe());
}

#[test]
fn a_file_the_app_writes_as_another_user_is_followed() {
    if !have_unshare() {
        return;
    }
    // The app runs as another user (--user) and writes a 0600 file in a
    // directory it owns: `ln -sf /dev/stdout` would fail here (the stdout
    // pipe is root's), but envinit stays root and reads the file.
    let dir = TempDir::new("follow-user");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(4321), Some(4321)).unwrap();
    let log = logs.join("app.log");
    let log = log.to_str().unwrap();
    let script = format!("umask 077; echo as-user-$(id -u) >> {log}");
    let out = Spec::pid1(["--user", "4321", "--stdout", log, "--", "sh", "-c", &script]).run();
    out.assert_code(0);
    assert_eq!(out.out(), "as-user-4321\n", "{}", out.describe());
}

#[test]
fn an_unreadable_path_warns_once_and_the_app_still_runs() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-unreadable");
    let a_directory = dir.join("a-directory.log");
    std::fs::create_dir(&a_directory).unwrap();
    let under_a_file = "/etc/passwd/app.log";
    let good = dir.join("good.log");
    let script = format!("echo fine >> {good}; echo app ran; exit 3");
    let out = Spec::pid1([
        "--stdout",
        &a_directory,
        "--stdout",
        under_a_file,
        "--stdout",
        &good,
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("ENVINIT_LOG", "warn")
    .run();
    out.assert_code(3);
    // Two writers on one pipe: the order between them is not fixed.
    let mut lines: Vec<String> = out.out().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["app ran", "fine"], "{}", out.describe());
    let warnings = out.err_lines();
    assert_eq!(
        warnings.len(),
        2,
        "one warning per bad path\n{}",
        out.describe()
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains(&a_directory) && l.contains("not a regular file")),
        "{}",
        out.describe()
    );
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("/etc/passwd") && l.contains("Not a directory")),
        "{}",
        out.describe()
    );
}

/// Starts envinit as PID 1 with its stdout on the write end of a pipe the
/// test holds (stderr captured as usual).
fn start_with_stdout(args: &[OsString], stdout: OwnedFd, env: &[(&str, &str)]) -> Running {
    let mut command = Command::new("unshare");
    command
        .envs(env.iter().copied())
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(envinit())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .process_group(0);
    Running::spawn(command, Mode::Pid1, None, common::RUN_TIMEOUT, None)
}

#[test]
fn a_closed_stdout_drops_the_lines_with_one_warning_and_spares_the_app() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-epipe");
    let log = dir.join("app.log");
    let gate = gate(&dir, "gate");
    // The app writes, then waits until envinit has warned: were envinit's
    // SIGPIPE forwarded, it would die of it (141) instead of exiting 7.
    let script = format!(
        "for i in 1 2 3; do echo $i >> {log}; done; read x < {gate}; echo more >> {log}; exit 7"
    );
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let command: Vec<OsString> = ["--stdout", &log, "--", "sh", "-c", &script]
        .iter()
        .map(OsString::from)
        .collect();
    let run = start_with_stdout(&command, write, &[("ENVINIT_LOG", "warn")]);
    run.stderr
        .wait_for(EVENT_TIMEOUT, |t| t.contains("Broken pipe").then_some(()))
        .unwrap_or_else(|| panic!("no warning about the closed stdout: {}", run.stderr.text()));
    open_gate(&gate);
    let out = run.wait();
    out.assert_code(7);
    assert_eq!(out.err_lines().len(), 1, "{}", out.describe());
}

#[test]
fn a_full_stdout_does_not_hold_up_signals_and_nothing_is_lost() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-full");
    let log = dir.join("app.log");
    // 2 MB of lines, far more than a pipe holds, then wait for SIGTERM.
    let script = format!(
        r#"{PY_PRELUDE}
import time
fd = opened(sys.argv[1])
lines(fd, 1, 200000)
os.write(2, b"written\n")
time.sleep(60)
"#
    );
    let Some(command) = py(&script, &[&log]) else {
        return;
    };
    let (read, write) = nix::unistd::pipe().unwrap();
    let run = start_with_stdout(&args(&["--stdout", &log], command), write, &[]);
    run.stderr
        .wait_for(EVENT_TIMEOUT, |t| t.contains("written").then_some(()))
        .unwrap_or_else(|| panic!("the app did not finish writing: {}", run.stderr.text()));
    // Nobody reads stdout: wait until envinit has (about) filled the pipe;
    // 2.4 MB are waiting to be copied.
    wait_until("envinit to fill its stdout pipe", EVENT_TIMEOUT, || {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int we own.
        unsafe { libc::ioctl(read.as_raw_fd(), libc::FIONREAD, &mut queued) };
        (queued >= 32 * 1024).then_some(())
    });
    let app = run.main_child("python3");
    let sent = Instant::now();
    run.signal(sig::TERM);
    wait_until(
        "the app to get the forwarded SIGTERM",
        EVENT_TIMEOUT,
        || (!alive(app)).then_some(()),
    );
    let took = sent.elapsed();
    // Now read everything: envinit drains the rest, then exits 143.
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::fs::File::from(read).read_to_end(&mut all).unwrap();
        all
    });
    let out = run.wait();
    let copied = reader.join().unwrap();
    out.assert_code(143);
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(
        copied == numbered(1..=200000).as_bytes(),
        "{} bytes copied\n{}",
        copied.len(),
        out.describe()
    );
}

/// Deleted and re-created (not renamed): the old file, still open, is read
/// to its end first, then the new one from its start; also right before
/// the exit.
#[test]
fn a_deleted_and_recreated_file_gives_every_line_once_and_in_order() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-delete");
    let log = dir.join("app.log");
    let gate0 = gate(&dir, "gate0");
    let gate1 = gate(&dir, "gate1");
    let script = format!(
        r#"{PY_PRELUDE}
log, gate0, gate1 = sys.argv[1:4]
fd = opened(log)
lines(fd, 1, 3000)
wait(gate0)                     # the test has seen line 3000: envinit has the file open
os.unlink(log)                  # deleted,
lines(fd, 3001, 3100)           # still written until the app reopens,
new = opened(log)               # then created again
os.close(fd)
fd = new
lines(fd, 3101, 6000)
wait(gate1)                     # the test has seen line 6000
os.unlink(log)                  # once more, and exit at once
fd = opened(log)
lines(fd, 6001, 6500)
"#
    );
    let Some(command) = py(&script, &[&log, &gate0, &gate1]) else {
        return;
    };
    let run = Spec::pid1(args(&["--stdout", &log], command))
        .env("ENVINIT_LOG", "warn")
        .start();
    // A file made and deleted before envinit first looks at the path is
    // not one it can follow (seen under qemu-user on a loaded machine):
    // the deletion waits until envinit has copied the first file's lines.
    run.wait_line("line 003000");
    open_gate(&gate0);
    run.wait_line("line 006000");
    open_gate(&gate1);
    let out = run.wait();
    out.assert_code(0);
    let want = numbered(1..=6500);
    assert!(
        out.out() == want,
        "{}\n{}",
        first_difference(&out.out(), &want),
        out.describe()
    );
    assert!(out.err().is_empty(), "{}", out.describe());
}

/// `--log-prefix` as a flag, and `--log-prefix=off` over the variable.
#[test]
fn the_log_prefix_flag_names_the_file_and_off_turns_the_variable_off() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("follow-prefix");
    let log = dir.join("access.log");
    let script = format!("echo GET >> {log}");
    let out = Spec::pid1(["--log-prefix", "--stdout", &log, "--", "sh", "-c", &script]).run();
    out.assert_code(0);
    assert_eq!(out.out(), "access.log: GET\n", "{}", out.describe());
    let out = Spec::pid1([
        "--log-prefix=off",
        "--stdout",
        &log,
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("ENVINIT_LOG_PREFIX", "on")
    .run();
    out.assert_code(0);
    assert_eq!(out.out(), "GET\n", "{}", out.describe());
}

/// Out of inotify instances (a host whose `fs.inotify.max_user_instances`
/// its other containers used up): one warning, nothing copied, the app
/// runs. The limit is lowered to 0 only in a user namespace the test makes
/// (/proc/sys/user/max_inotify_instances is per user namespace, counted
/// there and in every parent), so no other process on the machine is
/// touched.
#[test]
fn out_of_inotify_instances_is_one_warning_and_the_app_runs() {
    if !have_unshare()
        || !common::prerequisite(
            "unshare --user",
            common::probe("unshare", &["--user", "--map-root-user", "true"]),
        )
    {
        return;
    }
    let dir = TempDir::new("follow-inotify");
    let log = dir.join("app.log");
    let mut command = Command::new("unshare");
    command
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args([
            "sh",
            "-c",
            "echo 0 > /proc/sys/user/max_inotify_instances && exec \"$0\" \"$@\"",
        ])
        .arg(envinit())
        .args(["--stdout", &log, "--", "sh", "-c"])
        .arg(format!("echo copied >> {log}; echo ran; exit 3"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let out = Running::spawn(command, Mode::Pid1, None, common::RUN_TIMEOUT, None).wait();
    out.assert_code(3);
    assert_eq!(out.out(), "ran\n", "nothing copied: {}", out.describe());
    assert_eq!(
        out.err_lines(),
        [
            "envinit: warn: cannot watch the --stdout/--stderr files (check \
          fs.inotify.max_user_instances): their lines are not copied path=inotify_init \
          error=\"Too many open files\""
        ],
        "{}",
        out.describe()
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "copied\n");
}

// ---------------------------------------------------------------------------
// Docker

/// The x86_64 release binary the image gets (the host's build: this test
/// does not run the binary under test when that is another architecture's),
/// /bin/busybox and a Docker engine; None after a printed reason.
fn docker_ready() -> Option<PathBuf> {
    let binary = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-musl/release/envinit");
    let ok = common::prerequisite(
        "the static envinit",
        (!binary.exists()).then(|| "no static binary: run ./build (./test does)".into()),
    ) && common::prerequisite(
        "/bin/busybox",
        (!Path::new("/bin/busybox").exists())
            .then(|| "missing (apt-get install busybox-static)".into()),
    ) && engines::have_docker();
    ok.then_some(binary)
}

/// A `FROM scratch` image with envinit and busybox, removed on drop.
struct Image(String);

impl Image {
    fn build(binary: &Path) -> Image {
        let tag = engines::tag("envinit-follow-test");
        let dir = TempDir::new("follow-docker");
        std::fs::copy(binary, dir.path().join("envinit")).unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             COPY envinit /sbin/envinit\n\
             ENTRYPOINT [\"/sbin/envinit\"]\n",
        )
        .unwrap();
        let image = Image(tag);
        engines::docker(&["build", "-q", "-t", &image.0, dir.join(".").as_str()]);
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        engines::quietly("docker", &["rmi", "-f", &self.0]);
    }
}

#[test]
fn docker_logs_show_the_lines_of_a_rotated_log_file() {
    if common::host_code_only(this_test!(), "the image holds the host's x86_64 build") {
        return;
    }
    let Some(binary) = docker_ready() else {
        return;
    };
    let image = Image::build(&binary);
    let name = engines::name("envinit-follow-test");
    let script = "mkdir -p /var/log/app; \
                  for i in $(seq 1 500); do echo \"line $i\" >> /var/log/app/app.log; done; \
                  mv /var/log/app/app.log /var/log/app/app.log.1; \
                  echo rotated >> /var/log/app/app.log; echo oops >> /var/log/app/error.log; \
                  echo direct";
    let label = engines::label();
    let run = common::run_for(
        Command::new("docker")
            .args([
                "run",
                "--name",
                &name,
                &label[0],
                &label[1],
                "-e",
                "ENVINIT_LOG=warn",
                "-e",
                "ENVINIT_STDERR=/var/log/app/error.log",
            ])
            .args([
                &image.0,
                "--stdout",
                "/var/log/app/app.log",
                "--",
                "sh",
                "-c",
                script,
            ]),
        engines::COMMAND_TIMEOUT,
    );
    let logs = common::run_for(
        Command::new("docker").args(["logs", &name]),
        engines::COMMAND_TIMEOUT,
    );
    engines::quietly("docker", &["rm", "-f", &name]);
    assert!(run.status.success(), "docker run: {}", run.describe());
    let stdout = logs.out();
    let stderr = logs.err();
    // "direct" comes from the app itself: its place among the copies is
    // not fixed. The copied lines come once each, in order.
    let copied: Vec<&str> = stdout.lines().filter(|l| *l != "direct").collect();
    let mut want: Vec<String> = (1..=500).map(|i| format!("line {i}")).collect();
    want.push("rotated".into());
    assert_eq!(copied, want, "docker logs stdout:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| *l == "direct").count(), 1);
    assert_eq!(stderr, "oops\n");
}

// ---------------------------------------------------------------------------
// Rotation with the rotated file still written (issue 13, item 4)

/// Can `program` run here (`program ARG` exits 0)? Through
/// `common::prerequisite`: a skip with the reason, a failure under CI=true.
fn have_tool(program: &str, arg: &str) -> bool {
    common::prerequisite(program, common::probe(program, &[arg]))
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET on 127.0.0.1:`port`; the status code, or None when
/// nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The paths of the requests in nginx's combined-format access lines.
fn requested_paths(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.split("\"GET ").nth(1)?.split(' ').next())
        .collect()
}

#[test]
fn logrotate_in_create_mode_with_a_real_nginx_loses_no_access_line() {
    if !have_unshare()
        || !have_tool("nginx", "-v")
        || !have_tool("logrotate", "--version")
        || !have_tool("nsenter", "--version")
        || !have_tool("curl", "--version")
        || !have_tool("gzip", "--version")
    {
        return;
    }
    // Debian's nginx as its package runs it (master as root, workers as
    // nobody, logs opened by the master), and Debian's logrotate setting
    // for it: `create`, `compress` + `delaycompress`, a postrotate that
    // signals nginx to reopen its logs (USR1). Between logrotate's create
    // and nginx's reopen, nginx writes to the renamed files: the postrotate
    // makes requests there on purpose (curl), and a client keeps making
    // them all along.
    let dir = TempDir::new("follow-logrotate");
    let root = dir.path();
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for sub in ["logs", "tmp"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    let port = free_port();
    let (access, error) = (dir.join("logs/access.log"), dir.join("logs/error.log"));
    let temp = dir.join("tmp");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\n\
             worker_processes 1;\n\
             pid {pid};\n\
             error_log {error} notice;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log {access};\n\
               client_body_temp_path {temp}/body;\n\
               proxy_temp_path {temp}/proxy;\n\
               fastcgi_temp_path {temp}/fastcgi;\n\
               uwsgi_temp_path {temp}/uwsgi;\n\
               scgi_temp_path {temp}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{ return 200 \"ok\\n\"; }}\n\
               }}\n\
             }}\n",
            pid = dir.join("nginx.pid"),
        ),
    )
    .unwrap();
    let round = dir.join("round");
    let logrotate_conf = dir.join("logrotate.conf");
    std::fs::write(
        &logrotate_conf,
        format!(
            "{logs}/*.log {{\n\
             \tdaily\n\
             \tmissingok\n\
             \trotate 14\n\
             \tcompress\n\
             \tdelaycompress\n\
             \tnotifempty\n\
             \tcreate 0640 root root\n\
             \tsharedscripts\n\
             \tpostrotate\n\
             \t\tr=$(cat {round}); for i in 1 2 3; do curl -s -o /dev/null --max-time 5 http://127.0.0.1:{port}/window-$r-$i; done\n\
             \t\tkill -USR1 $(cat {pid})\n\
             \tendscript\n\
             }}\n",
            logs = dir.join("logs"),
            pid = dir.join("nginx.pid"),
        ),
    )
    .unwrap();

    let run = Spec::pid1([
        "--stdout", &access, "--stderr", &error, "--", "nginx", "-c", &conf,
    ])
    .env("ENVINIT_LOG", "warn")
    .timeout(Duration::from_secs(120))
    .start();
    let envinit_pid = run.init_pid();
    wait_until("nginx to answer", EVENT_TIMEOUT, || {
        (http_status(port, "/ready") == Some(200)).then_some(())
    });

    // The client: one request after the other until told to stop.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (done, stop) = (done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                assert_eq!(
                    http_status(port, &format!("/r/{n}")),
                    Some(200),
                    "request {n}"
                );
                done.store(n, std::sync::atomic::Ordering::SeqCst);
            }
            n
        })
    };
    let at_least = |count: u32| {
        wait_until(&format!("{count} requests"), EVENT_TIMEOUT, || {
            (done.load(std::sync::atomic::Ordering::SeqCst) >= count).then_some(())
        })
    };
    at_least(50);
    let rounds = 2;
    for r in 1..=rounds {
        std::fs::write(&round, r.to_string()).unwrap();
        let before = done.load(std::sync::atomic::Ordering::SeqCst);
        // logrotate inside the container's namespaces (its /proc, so the
        // pid file's number is nginx's), as a cron job there would run it.
        let out = common::run_for(
            Command::new("nsenter")
                .args(["--target", &envinit_pid.to_string()])
                .args(["--pid", "--mount", "--", "logrotate", "-f", "-s"])
                .arg(dir.join("logrotate.state"))
                .arg(&logrotate_conf),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "logrotate: {}", out.describe());
        at_least(before + 50);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let requests = client.join().unwrap();
    let mut want: Vec<String> = (1..=requests).map(|n| format!("/r/{n}")).collect();
    for r in 1..=rounds {
        want.extend((1..=3).map(|i| format!("/window-{r}-{i}")));
    }
    // Every line arrives while nginx still runs: the renamed files are
    // read on, the window's lines included.
    run.wait_stdout("every access line", |text| {
        let got = requested_paths(text);
        want.iter().all(|w| got.contains(&w.as_str()))
    });
    run.signal(sig::QUIT);
    let out = run.wait();
    out.assert_code(0);
    let text = out.out();
    let got = requested_paths(&text);
    for path in &want {
        assert_eq!(
            got.iter().filter(|p| *p == path).count(),
            1,
            "{path} is not in stdout exactly once\n{}",
            out.describe()
        );
    }
    assert_eq!(
        got.iter().filter(|p| **p != "/ready").count(),
        want.len(),
        "{}",
        out.describe()
    );
    // nginx notes the USR1 in the old error log, before it reopens (then
    // "reopening logs" from the master and the worker in the new one): per
    // rotation, each line copied once.
    let count = |what: &str| out.err().lines().filter(|l| l.contains(what)).count();
    assert_eq!(
        count("signal 10 (SIGUSR1) received"),
        rounds,
        "{}",
        out.describe()
    );
    assert_eq!(count("reopening logs"), 3 * rounds, "{}", out.describe());
    assert!(
        !out.err().contains("envinit: "),
        "envinit itself says nothing\n{}",
        out.describe()
    );
}

/// True once `pid` has an inotify watch (a `inotify wd:` line in the
/// fdinfo of one of its fds).
fn has_inotify_watch(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|info| info.contains("inotify wd:")))
}

#[test]
fn back_to_back_rotations_lose_and_repeat_nothing_beside_tail() {
    if !have_unshare() || !have_tool("tail", "--version") {
        return;
    }
    // 30 rename rotations of 300 lines each, as fast as python writes:
    // most generations live for well under a millisecond, many are renamed
    // away before any follower looks. envinit must copy every line once,
    // 5 runs out of 5. GNU `tail -F` follows the same file in each run,
    // side by side; its losses are only recorded (docs/performance.md).
    const ROTATIONS: u32 = 30;
    const LINES: u32 = 300;
    const RUNS: usize = 5;
    let script = format!(
        r#"{PY_PRELUDE}
log = sys.argv[1]
fd = opened(log)
for g in range(1, {ROTATIONS} + 1):
    lines(fd, (g - 1) * {LINES} + 1, g * {LINES})
    os.rename(log, "%s.%d" % (log, g))
    new = opened(log)
    os.close(fd)
    fd = new
"#
    );
    let total = ROTATIONS * LINES;
    let want: Vec<String> = (1..=total).map(|i| format!("line {i:06}")).collect();
    let mut tail_report = Vec::new();
    for attempt in 1..=RUNS {
        let dir = TempDir::new("follow-back-to-back");
        let log = dir.join("app.log");
        // The file exists from the start: tail -F follows it at once.
        std::fs::write(&log, "").unwrap();
        let mut tail = Command::new("tail");
        tail.args(["-F", "-n", "+1", &log])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        // Killed (its group) when dropped, or past its deadline.
        let tail = Running::spawn(tail, Mode::Direct, None, Duration::from_secs(120), None);
        let tail_out = std::sync::Arc::clone(&tail.stdout);
        wait_until("tail -F to watch the file", EVENT_TIMEOUT, || {
            has_inotify_watch(tail.spawned_pid() as u32).then_some(())
        });
        let Some(command) = py(&script, &[&log]) else {
            return;
        };
        let out = Spec::pid1(args(&["--stdout", &log], command))
            .env("ENVINIT_LOG", "warn")
            .run();
        out.assert_code(0);
        let text = out.out();
        let mut got: Vec<&str> = text.lines().collect();
        let in_order = got.windows(2).all(|w| w[0] < w[1]);
        got.sort_unstable();
        let lost = want
            .iter()
            .filter(|w| got.binary_search(&w.as_str()).is_err())
            .count();
        let repeated = got.len() + lost - want.len();
        assert!(
            lost == 0 && repeated == 0 && got == want,
            "run {attempt}: {lost} lines lost, {repeated} repeated\n{}",
            out.describe()
        );
        assert!(out.err().is_empty(), "{}", out.describe());

        // tail -F: everything it will print is there once nothing new came
        // for a second (a bound, not a synchronisation: only recorded).
        let mut seen = (0, Instant::now());
        wait_until("tail -F to settle", Duration::from_secs(30), || {
            let now = tail_out.text().lines().count();
            if now != seen.0 {
                seen = (now, Instant::now());
            }
            (now >= total as usize || seen.1.elapsed() > Duration::from_secs(1)).then_some(())
        });
        drop(tail);
        let tail_text = tail_out.text();
        let mut tail_got: Vec<&str> = tail_text.lines().collect();
        tail_got.sort_unstable();
        tail_got.dedup();
        let tail_lost = want
            .iter()
            .filter(|w| tail_got.binary_search(&w.as_str()).is_err())
            .count();
        tail_report.push(format!(
            "run {attempt}: envinit lost 0 (in order: {in_order}), tail -F lost {tail_lost} of {total}"
        ));
    }
    common::note(&format!(
        "back-to-back rotations ({ROTATIONS} x {LINES} lines):\n  {}",
        tail_report.join("\n  ")
    ));
}
