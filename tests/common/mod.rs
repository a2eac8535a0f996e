//! The harness for envinit's integration tests: runs the built binary as a
//! real PID 1 (`unshare --pid --fork --mount-proc envinit ...`, we are root)
//! or directly (not PID 1, the subreaper case), captures its stdout and
//! stderr, signals it from the host side, and waits for events (a line on a
//! pipe, a file, a /proc state) with bounded polls. Every run has a deadline:
//! past it, the whole process tree is SIGKILLed and the test fails with what
//! the process printed so far. Nothing here sleeps a fixed time to
//! synchronise.
//!
//! Every external command a test runs goes through here: [`run_for`] (a
//! command run to its end) or [`Spec`]/[`Running`] (envinit, or a command
//! the test talks to while it runs). Each starts in a process group of its
//! own and has a deadline; past it, the group and every descendant are
//! SIGKILLed, and the test fails with what was printed so far. The threads
//! that read its pipes are joined only once the pipes are closed, so a
//! descendant that keeps them open cannot hang the test. `.ci/run` checks
//! that no test file spawns a command any other way.
//!
//! Prerequisites (`unshare`, `python3`, `setsid`, a tool a test needs) go
//! through [`prerequisite`]: a missing one skips the test with one `SKIP:`
//! line naming it, except under `CI=true`, where it fails the test, naming
//! it. A case of a test that could not happen here is [`skip_case`]: a
//! `SKIP CASE` line, or a failure under CI. `./test` and `.ci/run` count
//! those lines.
//!
//! Names of things that outlive a process (users, groups, images,
//! containers) carry [`run_id`], so concurrent runs never share them and a
//! later run can remove what a killed one left ([`run_alive`]).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::libc;

/// The init under test: `INIT_UNDER_TEST` when set (`./test` sets it to the
/// release binary of `./build`; the aarch64 build, or a wrapper around tini
/// to see which of its known flaws the tests catch), else the binary cargo
/// built for these tests.
///
/// A binary for another architecture (the aarch64 build on an x86_64 host)
/// runs under qemu-user through binfmt_misc; when that is not set up, the
/// first call fails the test with how to set it up.
pub fn envinit() -> OsString {
    let path =
        std::env::var_os("INIT_UNDER_TEST").unwrap_or_else(|| env!("CARGO_BIN_EXE_envinit").into());
    static RUNS: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(problem) = RUNS.get_or_init(|| runs_here(Path::new(&path))) {
        panic!("{problem}");
    }
    path
}

/// The binary under test's `comm` in /proc (its file name, cut to 15
/// bytes as the kernel does): `envinit`, or `envinit-aarch64` for dist/'s.
pub fn envinit_comm() -> String {
    let path = PathBuf::from(envinit());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.chars().take(15).collect()
}

// ---------------------------------------------------------------------------
// The architecture of the binary under test

/// The machines the harness tells apart, by the ELF header's `e_machine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `EM_X86_64` (62).
    X86_64,
    /// `EM_AARCH64` (183).
    Aarch64,
    /// Another machine, or not an ELF file (a script wrapping another init).
    Other,
}

impl Arch {
    /// The architecture of this test process, i.e. of the host.
    pub fn host() -> Arch {
        if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::Other
        }
    }

    /// The name `uname -m` and the release files use.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Other => "other",
        }
    }
}

/// The architecture of an ELF file, from `e_machine` (2 bytes at offset 18,
/// in the byte order of `EI_DATA`, byte 5: 2 is big-endian).
pub fn elf_arch(path: &Path) -> Arch {
    let mut header = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || header[..4] != *b"\x7fELF" {
        return Arch::Other;
    }
    let bytes = [header[18], header[19]];
    let machine = if header[5] == 2 {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    };
    match machine {
        62 => Arch::X86_64,
        183 => Arch::Aarch64,
        _ => Arch::Other,
    }
}

/// The architecture of the binary under test (`INIT_UNDER_TEST`).
pub fn arch() -> Arch {
    static ARCH: OnceLock<Arch> = OnceLock::new();
    *ARCH.get_or_init(|| {
        elf_arch(Path::new(
            &std::env::var_os("INIT_UNDER_TEST")
                .unwrap_or_else(|| env!("CARGO_BIN_EXE_envinit").into()),
        ))
    })
}

/// True when the binary under test is for another architecture than the
/// host's, so it runs under qemu-user (binfmt_misc).
pub fn emulated() -> bool {
    let arch = arch();
    arch != Arch::Other && arch != Arch::host()
}

/// The name of the test function this is written in (the last path
/// segment of its type name, closures left out), so that a line naming the
/// test cannot drift from the function's name.
#[macro_export]
macro_rules! this_test {
    () => {{
        fn here() {}
        $crate::common::test_name(std::any::type_name_of_val(&here))
    }};
}

/// The test's name in `path::to::test::here` (see [`this_test!`]).
pub fn test_name(path: &'static str) -> &'static str {
    path.rsplit("::")
        .find(|segment| *segment != "here" && !segment.starts_with('{'))
        .unwrap_or(path)
}

/// What qemu-user 7.2 (Debian's qemu-user-static) cannot do, for tests of
/// the aarch64 binary run through it on an x86_64 host (`INIT_UNDER_TEST`,
/// as .ci/run's second pass does). Each gap skips only the cases that need
/// it ([`emulator_lacks`], [`emulator_lacks_case`]); everything else runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// It answers `prctl(PR_SET_CHILD_SUBREAPER)` with EINVAL, so envinit
    /// not being PID 1 cannot be a subreaper: orphans go to the host's
    /// init. As PID 1 nothing is missing.
    NoSubreaper,
    /// It keeps host real-time signals for itself and shifts the rest: the
    /// emulated program's 32-62 are the host's 34-64 (the host's 39 arrives
    /// as 37, a forwarded 37 leaves as 39), and the host's 32 and 33 have no
    /// counterpart. Forwarding round-trips; checks of the number envinit
    /// sees cannot pass.
    RealtimeShift,
    /// It runs threads of its own beside the program (and more at each
    /// fork), so a limit on a cgroup's tasks hits qemu itself first.
    OwnThreads,
}

impl Gap {
    fn reason(self) -> &'static str {
        match self {
            Gap::NoSubreaper => {
                "qemu-user answers PR_SET_CHILD_SUBREAPER with EINVAL: orphans go to the host's init"
            }
            Gap::RealtimeShift => {
                "qemu-user shifts real-time signal numbers by two (host 39 is the program's 37; host 32, 33: none)"
            }
            Gap::OwnThreads => {
                "qemu-user runs threads of its own, which a cgroup's task limit counts: it fails before envinit does"
            }
        }
    }
}

/// True (after a `SKIP (aarch64 under qemu-user)` line naming `test` and
/// the gap) when the binary under test runs under qemu-user, which lacks
/// `gap`: for a test whose every case needs it. Never on a native host of
/// that architecture, never for the host's own build. `test` is
/// `this_test!()`. Also known: qemu-user runs envinit's code about 13 times
/// slower than native (run such tests smaller, not skipped), and does not
/// pass inherited SIG_IGN on to the emulated program.
pub fn emulator_lacks(gap: Gap, test: &str) -> bool {
    let skip = emulated();
    if skip {
        note(&format!(
            "SKIP ({} under qemu-user): {test}: {}",
            arch().name(),
            gap.reason()
        ));
    }
    skip
}

/// [`emulator_lacks`] for one case of a test whose other cases still run:
/// the line says `SKIP CASE`, and the test still counts as run.
pub fn emulator_lacks_case(gap: Gap, test: &str, case: &str) -> bool {
    let skip = emulated();
    if skip {
        note(&format!(
            "SKIP CASE ({} under qemu-user): {test} [{case}]: {}",
            arch().name(),
            gap.reason()
        ));
    }
    skip
}

/// True (after a `HOST ONLY` line) when the binary under test is emulated
/// and the calling test does not run it (it checks host code, or an image
/// of the host's build): the aarch64 pass of .ci/run then leaves it out of
/// its counts instead of counting the host's result as the aarch64
/// binary's. The x86_64 pass runs it.
pub fn host_code_only(test: &str, why: &str) -> bool {
    let skip = emulated();
    if skip {
        note(&format!(
            "HOST ONLY ({} under qemu-user): {test}: {why}",
            arch().name()
        ));
    }
    skip
}

/// A case of a test that did not happen here (a kill that came too late, a
/// quota the machine would not set): under `CI=true` the test fails naming
/// it; elsewhere one `SKIP CASE` line says so and the rest of the test
/// runs.
pub fn skip_case(test: &str, case: &str, why: &str) {
    let message = format!("SKIP CASE: {test} [{case}]: {why}");
    if in_ci() {
        panic!(
            "case not checked (CI=true: a case that did not happen is a failure): {test} [{case}]: {why}"
        );
    }
    note(&message);
}

/// Checks once that the binary under test starts here (`--version`): a
/// foreign one needs qemu-user registered with binfmt_misc.
fn runs_here(path: &Path) -> Result<(), String> {
    if !emulated() {
        return Ok(());
    }
    let name = arch().name();
    let how = format!(
        "INIT_UNDER_TEST={} is an {name} binary: run it through qemu-user by registering \
         /usr/lib/binfmt.d/qemu-{name}.conf (Debian's qemu-user-static) with binfmt_misc, \
         as .ci/run does",
        path.display()
    );
    match try_run_for(Command::new(path).arg("--version"), RUN_TIMEOUT) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("{how} (`--version` gave {})", out.status)),
        Err(e) => Err(format!("{how} ({e})")),
    }
}

/// How long a whole run may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one awaited event (a line, a file, a /proc state) may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The step of every polling loop.
const STEP: Duration = Duration::from_millis(5);

/// Signal numbers as the kernel numbers them (x86_64 Linux; aarch64 uses
/// the same numbers for all of these).
pub mod sig {
    pub const HUP: i32 = 1;
    pub const INT: i32 = 2;
    pub const QUIT: i32 = 3;
    pub const KILL: i32 = 9;
    pub const USR1: i32 = 10;
    pub const USR2: i32 = 12;
    pub const TERM: i32 = 15;
    pub const CONT: i32 = 18;
    pub const STOP: i32 = 19;
    pub const WINCH: i32 = 28;
    /// A real-time signal that both glibc (SIGRTMIN 34) and musl (SIGRTMIN
    /// 35) leave to applications: SIGRTMIN+5 under musl.
    pub const RT40: i32 = 40;
}

// ---------------------------------------------------------------------------
// Prerequisites

/// True under `CI=true`, where a missing prerequisite or an unchecked
/// case fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Writes one whole line straight to fd 2, past libtest's capture, so skip
/// reasons show (one write: lines of tests running at once do not mix).
pub fn note(message: &str) {
    let line = format!("{message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Returns false (after one `SKIP: NAME is unavailable: PROBLEM` line) when
/// a prerequisite is missing, so the test can return early; under
/// `CI=true` the test fails instead, naming it. Every skip of a missing
/// tool, engine or facility goes through here.
pub fn prerequisite(name: &str, problem: Option<String>) -> bool {
    match problem {
        None => true,
        Some(problem) => {
            if in_ci() {
                panic!(
                    "missing prerequisite (CI=true: a missing prerequisite is a failure): \
                     {name} is unavailable: {problem}"
                );
            }
            note(&format!("SKIP: {name} is unavailable: {problem}"));
            false
        }
    }
}

/// None when `program args...` runs and succeeds, else what went wrong.
pub fn probe(program: &str, args: &[&str]) -> Option<String> {
    match try_run_for(Command::new(program).args(args), RUN_TIMEOUT) {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(e),
    }
}

/// The path of `program` on PATH, or None.
pub fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| {
            std::fs::metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
}

/// [`prerequisite`] for a program on PATH: `install` says how to get it.
pub fn have_program(program: &str, install: &str) -> bool {
    prerequisite(
        program,
        which(program)
            .is_none()
            .then(|| format!("not found on PATH ({install})")),
    )
}

/// Can we make a PID namespace (root and util-linux `unshare`)?
pub fn have_unshare() -> bool {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    let problem = PROBLEM.get_or_init(|| {
        probe("unshare", &["--pid", "--fork", "--mount-proc", "true"])
            .map(|p| format!("{p} (the PID 1 tests need root and util-linux unshare)"))
    });
    prerequisite("unshare --pid --fork --mount-proc", problem.clone())
}

/// Is `setsid --ctty` (util-linux) available?
pub fn have_setsid() -> bool {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    let problem = PROBLEM.get_or_init(|| probe("setsid", &["--ctty", "--help"]));
    prerequisite("setsid", problem.clone())
}

/// The real python3 interpreter (resolved once, so a pyenv shim is not in
/// the way of signals), if there is one.
pub fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let out = try_run_for(
            Command::new("python3").args(["-c", "import sys; print(sys.executable)"]),
            RUN_TIMEOUT,
        )?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !path.is_empty() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!("python3 failed: {}", out.status))
        }
    });
    match found {
        Ok(path) => Some(path),
        Err(problem) => {
            prerequisite("python3", Some(problem.clone()));
            None
        }
    }
}

/// The test children's script (tests/fixtures/child.py).
pub fn child_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/child.py")
}

/// `python3 child.py MODE ARGS...` as a command for envinit, or None (after
/// printing a skip reason) without python3.
pub fn py_child(mode: &str, args: &[&str]) -> Option<Vec<OsString>> {
    let python = python()?;
    let mut command = vec![python.as_os_str().to_owned(), child_py().into_os_string()];
    command.push(mode.into());
    command.extend(args.iter().map(OsString::from));
    Some(command)
}

// ---------------------------------------------------------------------------
// Scratch space

/// A fresh directory for one test, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes `$TMPDIR/envinit-test-<pid>-<n>-<name>`.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("envinit-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory, as a string (for command lines).
    pub fn join(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), all 256 values present.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        bytes.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

// ---------------------------------------------------------------------------
// Run ids

/// The start time of `pid` (field 22 of /proc/PID/stat, clock ticks after
/// boot), None when it is gone.
fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// This test process's run id, `PID-STARTTIME`: unique on this machine
/// while the process lives, and after (a pid is reused only with another
/// start time). Names of users, groups, images, containers, services and
/// secrets carry it; [`run_alive`] tells a live run's from a killed one's.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}-{}", start_time(pid).unwrap_or(0))
    })
}

/// The run id at the start of `text` (`PID-STARTTIME`, then the end or a
/// non-digit), and the rest.
pub fn split_run_id(text: &str) -> Option<(&str, &str)> {
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let pid = digits(text);
    if pid == 0 || text.as_bytes().get(pid) != Some(&b'-') {
        return None;
    }
    let start = digits(&text[pid + 1..]);
    if start == 0 {
        return None;
    }
    Some(text.split_at(pid + 1 + start))
}

/// True while the run `id` (from [`run_id`]) is still running: its pid
/// exists with the same start time. Leftovers of runs that are not alive
/// (killed before their clean-up) may be removed.
pub fn run_alive(id: &str) -> bool {
    let Some((pid, start)) = id.split_once('-') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

// ---------------------------------------------------------------------------
// Polling

/// Polls `check` every few milliseconds until it returns Some, or panics
/// with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(STEP);
    }
}

// ---------------------------------------------------------------------------
// /proc

/// One line of /proc/PID/stat, parsed.
#[derive(Debug, Clone)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// The foreground process group of the controlling terminal.
    pub tpgid: i32,
}

/// /proc/PID/stat, or None when the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(Stat {
        pid,
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        session: rest.get(3)?.parse().ok()?,
        tpgid: rest.get(5)?.parse().ok()?,
    })
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The children of `pid` (from /proc/PID/task/PID/children).
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Every live process in this pid namespace.
pub fn all_processes() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(stat)
        .collect()
}

/// All descendants of `root` (not `root` itself), parents before children.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut by_parent: HashMap<i32, Vec<i32>> = HashMap::new();
    for s in all_processes() {
        by_parent.entry(s.ppid).or_default().push(s.pid);
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in by_parent.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(child) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

/// The bitmask of a `SigXxx:` line of /proc/PID/status.
pub fn signal_mask(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

/// True while `signo` is pending for `pid` (thread or process queue), i.e.
/// sent but not yet taken.
pub fn signal_pending(pid: i32, signo: i32) -> bool {
    let bit = 1u64 << (signo - 1);
    ["SigPnd", "ShdPnd"]
        .iter()
        .any(|f| signal_mask(pid, f).is_some_and(|m| m & bit != 0))
}

/// Sends the raw signal `signo` (real-time signals included) to `pid`.
pub fn send(pid: i32, signo: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signo) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SIGKILLs `root` and every descendant (collected first, so none escapes
/// by being reparented), and the process group `pgid` if given.
pub fn kill_tree(root: i32, pgid: Option<i32>) {
    let mut pids = descendants(root);
    pids.push(root);
    for pid in pids {
        let _ = send(pid, sig::KILL);
    }
    if let Some(pgid) = pgid {
        let _ = send(-pgid, sig::KILL);
    }
}

// ---------------------------------------------------------------------------
// Captured output

/// Bytes read from a pipe (or pty) by a background thread.
#[derive(Default)]
pub struct Stream {
    state: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Stream {
    /// Starts a thread that reads `source` into a new stream until EOF (or,
    /// for a pty master, EIO when the last slave closes).
    pub fn capture(source: impl Read + Send + 'static) -> (Arc<Stream>, JoinHandle<()>) {
        let stream = Arc::new(Stream::default());
        let sink = Arc::clone(&stream);
        let handle = std::thread::spawn(move || {
            let mut source = source;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match source.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut state = sink.state.lock().unwrap();
                        state.0.extend_from_slice(&buf[..n]);
                        sink.grew.notify_all();
                    }
                }
            }
            sink.state.lock().unwrap().1 = true;
            sink.grew.notify_all();
        });
        (stream, handle)
    }

    /// A stream with nothing to read.
    pub fn closed_empty() -> Arc<Stream> {
        let stream = Stream::default();
        stream.state.lock().unwrap().1 = true;
        Arc::new(stream)
    }

    /// Everything read so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.lock().unwrap().0.clone()
    }

    /// Everything read so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// True once the writing side is closed.
    pub fn closed(&self) -> bool {
        self.state.lock().unwrap().1
    }

    /// Waits until the text read so far satisfies `found` (returning its
    /// answer), or until EOF or `timeout` (returning None).
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(value) = found(&String::from_utf8_lossy(&state.0)) {
                return Some(value);
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                return None;
            }
            state = self.grew.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits until EOF, up to `timeout`; true if it came.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.grew.wait_timeout(state, deadline - now).unwrap().0;
        }
        true
    }
}

// ---------------------------------------------------------------------------
// Runs

/// How envinit is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As PID 1 of a new pid namespace, via `unshare --pid --fork --mount-proc`.
    Pid1,
    /// Directly, as a child of the test: not PID 1 (the subreaper case).
    Direct,
}

/// The fds envinit starts with, beyond 0, 1, 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fds {
    /// None at all.
    Clean,
    /// Fds 5 and 9 (not close-on-exec), as an engine or a shell may leave
    /// them.
    Leak,
}

/// `python3 -c BLOCK_AND_EXEC MASK PROGRAM ARGS...`: blocks the signals of
/// MASK with the raw rt_sigprocmask (so 32-34 too), then execs PROGRAM.
const BLOCK_AND_EXEC: &str = "import ctypes, os, sys
mask = ctypes.c_uint64(int(sys.argv[1]))
if ctypes.CDLL(None, use_errno=True).syscall(14, 0, ctypes.byref(mask), None, 8) != 0:
    sys.exit('rt_sigprocmask failed')
os.execv(sys.argv[2], sys.argv[2:])";

/// What to start: envinit's arguments, environment, stdin, cwd.
pub struct Spec {
    mode: Mode,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_clear: bool,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    fds: Option<Fds>,
    blocked: u64,
}

impl Spec {
    /// envinit as PID 1 with these arguments (options and command).
    pub fn pid1<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Spec {
        Spec::new(Mode::Pid1, args)
    }

    /// envinit run directly (not PID 1) with these arguments.
    pub fn direct<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Spec {
        Spec::new(Mode::Direct, args)
    }

    /// envinit in `mode` with these arguments.
    pub fn in_mode<S: AsRef<OsStr>>(mode: Mode, args: impl IntoIterator<Item = S>) -> Spec {
        Spec::new(mode, args)
    }

    fn new<S: AsRef<OsStr>>(mode: Mode, args: impl IntoIterator<Item = S>) -> Spec {
        Spec {
            mode,
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            env_clear: false,
            stdin: None,
            cwd: None,
            timeout: RUN_TIMEOUT,
            fds: None,
            blocked: 0,
        }
    }

    /// Adds one environment variable for envinit.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spec {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Starts envinit with only the variables given by [`Spec::env`].
    pub fn env_clear(mut self) -> Spec {
        self.env_clear = true;
        self
    }

    /// Feeds these bytes to envinit's stdin, then closes it (default: a
    /// stdin that is at EOF at once).
    pub fn stdin(mut self, bytes: Vec<u8>) -> Spec {
        self.stdin = Some(bytes);
        self
    }

    /// Starts envinit in this directory.
    pub fn cwd(mut self, dir: &Path) -> Spec {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// Overrides the run's deadline.
    pub fn timeout(mut self, timeout: Duration) -> Spec {
        self.timeout = timeout;
        self
    }

    /// Starts envinit with only fds 0, 1, 2 open (closing whatever this test
    /// process inherited), or with extra fds 5 and 9 as well.
    pub fn fds(mut self, fds: Fds) -> Spec {
        self.fds = Some(fds);
        self
    }

    /// Starts envinit with these signals blocked (bit N-1 for signal N, set
    /// with the raw system call, so 32-34 too), as a parent may start it.
    pub fn blocked(mut self, mask: u64) -> Spec {
        self.blocked = mask;
        self
    }

    /// Starts envinit.
    pub fn start(self) -> Running {
        let mut command = match self.mode {
            Mode::Pid1 => {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--mount-proc"]);
                if self.blocked != 0 {
                    // unshare (glibc) drops 32 and 33 from the mask it passes
                    // on, so they are blocked again after it, by a python3
                    // that then execs envinit (which stays PID 1).
                    c.arg(python().unwrap_or(Path::new("python3")))
                        .args(["-c", BLOCK_AND_EXEC])
                        .arg(self.blocked.to_string());
                }
                c.arg(envinit());
                c
            }
            Mode::Direct => Command::new(envinit()),
        };
        command
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if self.env_clear {
            command.env_clear();
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        if self.blocked != 0 {
            let mask = self.blocked;
            // SAFETY: rt_sigprocmask is async-signal-safe and reads the
            // 8-byte mask on this closure's stack.
            unsafe {
                command.pre_exec(move || {
                    let rc = libc::syscall(
                        libc::SYS_rt_sigprocmask,
                        libc::SIG_BLOCK,
                        &mask as *const u64,
                        std::ptr::null_mut::<u64>(),
                        8usize,
                    );
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        if let Some(fds) = self.fds {
            let null = std::fs::File::open("/dev/null").unwrap();
            let null_fd = std::os::fd::AsRawFd::as_raw_fd(&null);
            // SAFETY: the closure runs in the forked child before exec and
            // only calls fcntl, close and dup2, which are async-signal-safe;
            // `null` outlives the spawn below.
            unsafe {
                command.pre_exec(move || {
                    // Close what this test process itself inherited without
                    // close-on-exec (std's own pipes are close-on-exec).
                    for fd in 3..4096 {
                        if fd != null_fd && libc::fcntl(fd, libc::F_GETFD) == 0 {
                            libc::close(fd);
                        }
                    }
                    if fds == Fds::Leak {
                        for target in [5, 9] {
                            if libc::dup2(null_fd, target) < 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                        }
                    }
                    Ok(())
                });
            }
            return Running::spawn(command, self.mode, self.stdin, self.timeout, Some(null));
        }
        Running::spawn(command, self.mode, self.stdin, self.timeout, None)
    }

    /// Starts envinit and waits for it to exit.
    pub fn run(self) -> Finished {
        self.start().wait()
    }
}

/// A started envinit (or the command that starts it), or any command a test
/// talks to while it runs.
pub struct Running {
    child: Option<Child>,
    /// The program, for messages.
    name: String,
    mode: Mode,
    started: Instant,
    deadline: Instant,
    init: OnceLock<i32>,
    /// envinit's stdout (the child's, passed through).
    pub stdout: Arc<Stream>,
    /// envinit's stderr (its log lines and the child's stderr).
    pub stderr: Arc<Stream>,
    readers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit status, as `std::process::Output` has it.
    pub status: ExitStatus,
    /// The exit code; None when killed by a signal.
    pub code: Option<i32>,
    /// The killing signal, if any.
    pub signal: Option<i32>,
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// Everything on stderr.
    pub stderr: Vec<u8>,
    /// From the start to the exit.
    pub elapsed: Duration,
    /// False when something still held stdout or stderr open 5 s after the
    /// exit (a descendant that outlived envinit).
    pub pipes_closed: bool,
}

impl Finished {
    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stderr's lines.
    pub fn err_lines(&self) -> Vec<String> {
        self.err().lines().map(str::to_string).collect()
    }

    /// A summary for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "code {:?} signal {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.signal,
            self.elapsed,
            tail(&self.out()),
            tail(&self.err())
        )
    }

    /// Asserts the exit code, showing the output on failure.
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "{}", self.describe());
    }
}

/// The lines of a text, without a pty's `\r` before each `\n`.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.trim_end_matches('\r'))
}

/// True when `text` has a line equal to `line`.
pub fn has_line(text: &str, line: &str) -> bool {
    lines(text).any(|l| l == line)
}

/// How many lines of `text` equal `line`.
pub fn count_lines(text: &str, line: &str) -> usize {
    lines(text).filter(|l| *l == line).count()
}

/// The last few KiB of a text, for messages.
pub fn tail(text: &str) -> &str {
    let limit = 4096;
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl Running {
    /// Spawns `command` (stdout/stderr piped or already redirected) and
    /// captures what it prints. `keep` is held until the spawn is done.
    pub fn spawn(
        mut command: Command,
        mode: Mode,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
        keep: Option<std::fs::File>,
    ) -> Running {
        Running::launch(&mut command, mode, stdin, timeout, keep)
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
    }

    fn launch(
        command: &mut Command,
        mode: Mode,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
        keep: Option<std::fs::File>,
    ) -> std::io::Result<Running> {
        let started = Instant::now();
        let mut child = command.spawn()?;
        drop(keep);
        let mut readers = Vec::new();
        let stdout = match child.stdout.take() {
            Some(pipe) => {
                let (s, h) = Stream::capture(pipe);
                readers.push(h);
                s
            }
            None => Stream::closed_empty(),
        };
        let stderr = match child.stderr.take() {
            Some(pipe) => {
                let (s, h) = Stream::capture(pipe);
                readers.push(h);
                s
            }
            None => Stream::closed_empty(),
        };
        let writer = match (child.stdin.take(), stdin) {
            (Some(mut pipe), Some(bytes)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        Ok(Running {
            child: Some(child),
            name: program_name(command),
            mode,
            started,
            deadline: started + timeout,
            init: OnceLock::new(),
            stdout,
            stderr,
            readers,
            writer,
        })
    }

    /// Spawns `command` (not in a group of its own: `setsid` makes a
    /// session) whose output, stdout and stderr together, e.g. a pty
    /// master, is read by `output`.
    pub fn adopt(
        mut command: Command,
        mode: Mode,
        timeout: Duration,
        output: impl Read + Send + 'static,
    ) -> Running {
        let started = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let name = program_name(&command);
        // The parent's copies of what the command was given (a pty's
        // slave) close here, so the reader sees the end when the last
        // process holding them is gone.
        drop(command);
        let (stream, reader) = Stream::capture(output);
        Running {
            child: Some(child),
            name,
            mode,
            started,
            deadline: started + timeout,
            init: OnceLock::new(),
            stdout: stream,
            stderr: Stream::closed_empty(),
            readers: vec![reader],
            writer: None,
        }
    }

    /// Its exit status once it has exited (reaped here), without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// True once the deadline has passed.
    pub fn overdue(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The pid of the process the test started (unshare or envinit).
    pub fn spawned_pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// envinit's pid as the test sees it: the child of `unshare` in
    /// [`Mode::Pid1`] (waited for), the spawned process in [`Mode::Direct`].
    pub fn init_pid(&self) -> i32 {
        *self.init.get_or_init(|| {
            let spawned = self.spawned_pid();
            match self.mode {
                Mode::Direct => spawned,
                Mode::Pid1 => wait_until("unshare to fork envinit", EVENT_TIMEOUT, || {
                    children(spawned).first().copied()
                }),
            }
        })
    }

    /// The main child of envinit, once it runs a program named `comm` (so
    /// not envinit's own fork before exec).
    pub fn main_child(&self, comm: &str) -> i32 {
        let init = self.init_pid();
        wait_until(&format!("envinit's child `{comm}`"), EVENT_TIMEOUT, || {
            children(init)
                .into_iter()
                .find(|&pid| stat(pid).is_some_and(|s| s.comm == comm))
        })
    }

    /// Sends `signo` to envinit.
    pub fn signal(&self, signo: i32) {
        let pid = self.init_pid();
        send(pid, signo).unwrap_or_else(|e| panic!("kill({pid}, {signo}): {e}"));
    }

    /// Sends `signo` to envinit and waits until envinit has taken it (it is
    /// no longer pending), so a second identical signal is not merged.
    pub fn signal_taken(&self, signo: i32) {
        self.signal(signo);
        let pid = self.init_pid();
        wait_until(
            &format!("envinit to take signal {signo}"),
            EVENT_TIMEOUT,
            || (!signal_pending(pid, signo)).then_some(()),
        );
    }

    /// Waits until stdout holds a line equal to `line`; returns when.
    pub fn wait_line(&self, line: &str) -> Instant {
        self.wait_stdout(&format!("line {line:?} on stdout"), |text| {
            has_line(text, line)
        })
    }

    /// Waits until stdout satisfies `found`; returns when. Panics with the
    /// output if it ends or EVENT_TIMEOUT passes first.
    pub fn wait_stdout(&self, what: &str, mut found: impl FnMut(&str) -> bool) -> Instant {
        let timeout = EVENT_TIMEOUT.min(self.deadline.saturating_duration_since(Instant::now()));
        if self
            .stdout
            .wait_for(timeout, |t| found(t).then_some(()))
            .is_some()
        {
            return Instant::now();
        }
        panic!(
            "no {what} (after {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.started.elapsed(),
            tail(&self.stdout.text()),
            tail(&self.stderr.text())
        );
    }

    /// Waits for the exit (killing everything past the deadline, which
    /// fails the test), then for the output pipes to close (up to 5 s).
    pub fn wait(mut self) -> Finished {
        let Some(mut child) = self.child.take() else {
            panic!("already waited");
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => panic!("waiting for envinit: {e}"),
            }
            if Instant::now() >= self.deadline {
                let root = child.id() as i32;
                kill_tree(root, Some(root));
                let _ = child.wait();
                // Never joined: something outside the group may hold the
                // pipes (the readers end with the test process).
                self.stdout.wait_closed(Duration::from_secs(2));
                self.stderr.wait_closed(Duration::from_secs(2));
                panic!(
                    "{} did not exit within {:?}: killed its process group and descendants\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.name,
                    self.deadline - self.started,
                    tail(&self.stdout.text()),
                    tail(&self.stderr.text())
                );
            }
            std::thread::sleep(STEP);
        };
        let elapsed = self.started.elapsed();
        let closed_out = self.stdout.wait_closed(Duration::from_secs(5));
        let closed_err = self.stderr.wait_closed(Duration::from_secs(5));
        // The stdin writer is joined only when it is done: a descendant
        // that holds stdin open without reading would block it.
        if let Some(writer) = self.writer.take().filter(|w| w.is_finished()) {
            let _ = writer.join();
        }
        if closed_out && closed_err {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
        Finished {
            status,
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout.bytes(),
            stderr: self.stderr.bytes(),
            elapsed,
            pipes_closed: closed_out && closed_err,
        }
    }
}

impl Drop for Running {
    /// A test that fails midway leaves nothing behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let root = child.id() as i32;
            if let Some(&init) = self.init.get() {
                kill_tree(init, None);
            }
            kill_tree(root, Some(root));
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// External commands

/// How long a tool's command may take by default (a probe, `useradd`, a
/// `docker inspect`); builds and engines pass their own bound.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The program `command` runs, for messages.
fn program_name(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// Runs `command` to its end, bounded by `timeout`: stdin at EOF, stdout
/// and stderr captured, in a process group of its own. Past the deadline
/// the group and every descendant get SIGKILL and the test fails with what
/// the command printed so far. When it exits but something it started
/// still holds its output open, that group is killed too (after 5 s) and
/// the output so far is returned. The one way tests run a command to its
/// end (`.ci/run` checks that no test file calls `.output()`, `.status()`
/// or `.spawn()` itself). A command that cannot be started fails the test;
/// see [`try_run_for`].
pub fn run_for(command: &mut Command, timeout: Duration) -> Finished {
    try_run_for(command, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_for`], but a command that cannot be started (not installed, not
/// executable) is an `Err` naming it, for prerequisite probes.
pub fn try_run_for(command: &mut Command, timeout: Duration) -> Result<Finished, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let run = Running::launch(command, Mode::Direct, None, timeout, None)
        .map_err(|e| format!("cannot run `{}`: {e}", program_name(command)))?;
    let group = run.spawned_pid();
    let out = run.wait();
    if !out.pipes_closed {
        let _ = send(-group, sig::KILL);
    }
    Ok(out)
}

/// [`run_for`] with [`COMMAND_TIMEOUT`]; the test fails unless the command
/// succeeds. Its stdout.
pub fn ok(command: &mut Command) -> String {
    let out = run_for(command, COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        out.out(),
        out.err()
    );
    out.out()
}
