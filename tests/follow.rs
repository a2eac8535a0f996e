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

// ---------------------------------------------------------------------------
// Docker

fn docker_ready() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let binary = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-musl/release/envinit");
    let problem = if !binary.exists() {
        Some("no static binary: run ./build (./test does)")
    } else if !Path::new("/bin/busybox").exists() {
        Some("/bin/busybox missing (apt-get install busybox-static)")
    } else if !Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("no running Docker engine")
    } else {
        None
    };
    if let Some(problem) = problem {
        assert!(!ci, "CI=true and a prerequisite is missing: {problem}");
        common::note(&format!("SKIP: {problem}"));
        return false;
    }
    true
}

/// A `FROM scratch` image with envinit and busybox, removed on drop.
struct Image(String);

impl Image {
    fn build() -> Image {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let tag = format!("envinit-follow-test:{}", std::process::id());
        let dir = TempDir::new("follow-docker");
        std::fs::copy(
            root.join("target/x86_64-unknown-linux-musl/release/envinit"),
            dir.path().join("envinit"),
        )
        .unwrap();
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
        let out = Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Image(tag)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn docker_logs_show_the_lines_of_a_rotated_log_file() {
    if !docker_ready() {
        return;
    }
    let image = Image::build();
    let name = format!("envinit-follow-test-{}", std::process::id());
    let script = "mkdir -p /var/log/app; \
                  for i in $(seq 1 500); do echo \"line $i\" >> /var/log/app/app.log; done; \
                  mv /var/log/app/app.log /var/log/app/app.log.1; \
                  echo rotated >> /var/log/app/app.log; echo oops >> /var/log/app/error.log; \
                  echo direct";
    let run = Command::new("docker")
        .args([
            "run",
            "--name",
            &name,
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
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let logs = Command::new("docker")
        .args(["logs", &name])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    assert!(run.success(), "docker run: {run}");
    let stdout = String::from_utf8_lossy(&logs.stdout);
    let stderr = String::from_utf8_lossy(&logs.stderr);
    // "direct" comes from the app itself: its place among the copies is
    // not fixed. The copied lines come once each, in order.
    let copied: Vec<&str> = stdout.lines().filter(|l| *l != "direct").collect();
    let mut want: Vec<String> = (1..=500).map(|i| format!("line {i}")).collect();
    want.push("rotated".into());
    assert_eq!(copied, want, "docker logs stdout:\n{stdout}");
    assert_eq!(stdout.lines().filter(|l| *l == "direct").count(), 1);
    assert_eq!(stderr, "oops\n");
}
