//! The container engines for the example tests (tests/examples.rs): Docker,
//! Compose (`docker compose` or docker-compose v1), a single-node Swarm and
//! Podman, driven through their command lines with a deadline on every
//! command; the base image made by tests/fixtures/images.sh (Debian from
//! debootstrap, no registry), built once per run and reused; the example
//! images built from examples/*/ exactly as their READMEs say, with the
//! local base passed as the `BASE` build argument; and guards that remove
//! every container, project, service and swarm when a test ends, however it
//! ends. Names start with `envinit-ex-`.
//!
//! A missing engine skips the test with a printed reason, except under
//! CI=true, where it fails. The engine tests take one lock, so they run one
//! at a time: a JVM, a Compose project and a Swarm at once on two shared
//! cores would only make each other time out.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long one engine command may take (a build, a `compose up`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the base image may take to build (debootstrap + apt).
const FIXTURE_TIMEOUT: Duration = Duration::from_secs(900);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// False (after printing why) when a prerequisite is missing; panics under
/// CI=true.
pub fn prerequisite(ok: bool, what: &str) -> bool {
    if !ok {
        let message = format!("SKIP: {what}");
        assert!(
            !in_ci(),
            "{message} (CI=true: a missing prerequisite is a failure)"
        );
        let _ = writeln!(std::io::stderr(), "{message}");
    }
    ok
}

/// Serialises the engine tests (see the module doc). A failed test poisons
/// nothing: the next one takes the lock all the same.
pub fn engine_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The envinit binary the images get: `INIT_UNDER_TEST` (set by ./test to
/// the release build) or the static release build itself.
pub fn envinit_binary() -> Option<PathBuf> {
    let path = std::env::var_os("INIT_UNDER_TEST").map_or_else(
        || root().join("target/x86_64-unknown-linux-musl/release/envinit"),
        PathBuf::from,
    );
    prerequisite(
        path.exists(),
        &format!(
            "no static envinit at {} (run ./build, or ./test)",
            path.display()
        ),
    )
    .then_some(path)
}

// ---------------------------------------------------------------------------
// Commands with a deadline

/// Runs a command with stdin closed, killing it after `timeout` (which
/// fails the test with what it printed).
pub fn run_for(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out.join().unwrap_or_default()),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs `program args...` (bounded by COMMAND_TIMEOUT); its stdout if it
/// succeeded, else the test fails with its stderr.
pub fn ok(program: &str, args: &[&str]) -> String {
    let out = run_for(Command::new(program).args(args), COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs and ignores the outcome (cleanup).
pub fn quietly(program: &str, args: &[&str]) {
    let _ = run_for(Command::new(program).args(args), Duration::from_secs(120));
}

/// Polls `check` every 100 ms until it gives Some, or fails the test.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.0 GET; the whole response (headers and body), or None when
/// nothing answers yet.
pub fn http_get(address: &str, path: &str) -> Option<String> {
    let addr = address.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    (!response.is_empty()).then_some(response)
}

// ---------------------------------------------------------------------------
// Docker

/// Is a Docker engine running?
pub fn have_docker() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    prerequisite(ok, "no running Docker engine (`docker info` failed)")
}

/// `docker ARGS...`, its stdout; fails the test if it fails.
pub fn docker(args: &[&str]) -> String {
    ok("docker", args)
}

/// The base image (tests/fixtures/images.sh) in `engine`'s store, built
/// once; None (after a printed reason) when it cannot be made.
fn fixture(engine: &str) -> Option<String> {
    let script = root().join("tests/fixtures/images.sh");
    let mut command = Command::new(&script);
    command.arg(engine);
    let out = run_for(&mut command, FIXTURE_TIMEOUT);
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if !log.is_empty() {
        let _ = write!(std::io::stderr(), "{log}");
    }
    match out.status.code() {
        Some(0) if !image.is_empty() => Some(image),
        // 69: debootstrap is missing and no image is cached.
        Some(69) => {
            prerequisite(false, log.trim());
            None
        }
        _ => panic!(
            "{} {engine} failed ({}):\n{log}",
            script.display(),
            out.status
        ),
    }
}

/// The Debian base image in Docker.
pub fn base_image() -> Option<&'static str> {
    static IMAGE: OnceLock<Option<String>> = OnceLock::new();
    if !have_docker() {
        return None;
    }
    IMAGE.get_or_init(|| fixture("docker")).as_deref()
}

/// Builds `examples/<example>` (with `dockerfile`, relative to it) as
/// `tag` with `engine` (docker or podman), once per test run: the
/// example's folder plus the static envinit (and `extra` files: name and
/// source) as the build context, the local base as `BASE`.
pub fn build_example(
    engine: &str,
    example: &str,
    dockerfile: &str,
    tag: &str,
    extra: &[(&str, PathBuf)],
) -> bool {
    static BUILT: Mutex<Option<HashMap<String, bool>>> = Mutex::new(None);
    let base = match engine {
        "podman" => podman_base(),
        _ => base_image(),
    };
    let (Some(base), Some(envinit)) = (base, envinit_binary()) else {
        return false;
    };
    let key = format!("{engine} {tag}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&done) = built.get_or_insert_with(HashMap::new).get(&key) {
        return done;
    }
    let context = context(example, &envinit, extra);
    let base = if engine == "podman" {
        format!("localhost/{base}")
    } else {
        base.to_string()
    };
    let mut command = Command::new(engine);
    command
        .args(["build", "-q", "--build-arg"])
        .arg(format!("BASE={base}"))
        .arg("-f")
        .arg(context.path.join(dockerfile))
        .args(["-t", tag])
        .arg(&context.path);
    if engine == "podman" {
        podman_env(&mut command);
    }
    let out = run_for(&mut command, COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "{engine} build of examples/{example}/{dockerfile} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if engine == "podman" {
        // The image this build replaced, now untagged (Podman here is the
        // tests' own).
        let mut prune = Command::new("podman");
        prune.args(["image", "prune", "-f"]);
        podman_env(&mut prune);
        let _ = run_for(&mut prune, COMMAND_TIMEOUT);
    }
    built.get_or_insert_with(HashMap::new).insert(key, true);
    true
}

/// A copy of examples/<example> with envinit in it: a build context, or a
/// Compose project directory. Removed on drop.
pub struct Context {
    pub path: PathBuf,
}

impl Drop for Context {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Copies examples/<example> and the envinit binary (plus `extra`) into a
/// fresh directory.
pub fn context(example: &str, envinit: &Path, extra: &[(&str, PathBuf)]) -> Context {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "envinit-ex-{}-{}-{example}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&path);
    copy_dir(&root().join("examples").join(example), &path);
    std::fs::copy(envinit, path.join("envinit")).unwrap();
    for (name, source) in extra {
        std::fs::copy(source, path.join(name)).unwrap();
    }
    Context { path }
}

/// A container (Docker or Podman), removed when the test ends.
pub struct Container {
    engine: &'static str,
    pub name: String,
}

impl Container {
    /// `docker run -d --name NAME ARGS...`.
    pub fn start(name: &str, args: &[&str]) -> Container {
        Container::start_with("docker", name, args)
    }

    /// `ENGINE run -d --name NAME ARGS...`.
    pub fn start_with(engine: &'static str, name: &str, args: &[&str]) -> Container {
        let container = Container {
            engine,
            name: name.to_string(),
        };
        container.engine(&["rm", "-f", name]);
        let mut run = vec!["run", "-d", "--name", name];
        run.extend_from_slice(args);
        let out = container.engine(&run);
        assert!(
            out.status.success(),
            "{engine} run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        container
    }

    fn engine(&self, args: &[&str]) -> Output {
        let mut command = Command::new(self.engine);
        command.args(args);
        if self.engine == "podman" {
            podman_env(&mut command);
        }
        run_for(&mut command, COMMAND_TIMEOUT)
    }

    /// stdout and stderr of the container so far, together.
    pub fn logs(&self) -> String {
        let out = self.engine(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Only the container's stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.engine(&["logs", &self.name]).stdout).into_owned()
    }

    /// Waits until the logs contain `text`; returns them.
    pub fn wait_log(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if logs.contains(text) {
                return logs;
            }
            assert!(
                Instant::now() < deadline && self.running(),
                "no {text:?} in the logs of {} after {timeout:?} (running: {}):\n{logs}",
                self.name,
                self.running()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the container runs.
    pub fn running(&self) -> bool {
        let out = self.engine(&["inspect", "-f", "{{.State.Running}}", &self.name]);
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    }

    /// `ENGINE exec NAME ARGS...`, its stdout (the test fails if it fails).
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        let out = self.engine(&full);
        assert!(
            out.status.success(),
            "{} exec {}: {}",
            self.engine,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ENGINE kill --signal SIGNAL NAME`.
    pub fn kill(&self, signal: &str) {
        let out = self.engine(&["kill", "--signal", signal, &self.name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ENGINE stop -t TIMEOUT`; the exit code and how long the stop took.
    pub fn stop(&self, timeout_seconds: u32) -> (i32, Duration) {
        let start = Instant::now();
        let t = timeout_seconds.to_string();
        let out = self.engine(&["stop", "-t", &t, &self.name]);
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (self.exit_code(), took)
    }

    /// Waits (bounded) for the container to exit by itself; its exit code.
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        wait_for(&format!("{} to exit", self.name), timeout, || {
            (!self.running()).then_some(())
        });
        self.exit_code()
    }

    /// The exit code of a stopped container.
    pub fn exit_code(&self) -> i32 {
        let out = self.engine(&["inspect", "-f", "{{.State.ExitCode}}", &self.name]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no exit code for {}", self.name))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.engine(&["rm", "-f", &self.name]);
    }
}

// ---------------------------------------------------------------------------
// Compose

/// `docker compose` (v2) if there is one, else `docker-compose` (v1).
pub fn compose_command() -> Option<Vec<&'static str>> {
    static FOUND: OnceLock<Option<Vec<&'static str>>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let works = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works("docker", &["compose", "version"]) {
            Some(vec!["docker", "compose"])
        } else if works("docker-compose", &["version"]) {
            Some(vec!["docker-compose"])
        } else {
            None
        }
    });
    prerequisite(
        found.is_some(),
        "neither `docker compose` nor `docker-compose` works",
    )
    .then(|| found.clone().unwrap_or_default())
}

/// A Compose project in a copy of an example's folder; `down` on drop.
pub struct Compose {
    command: Vec<&'static str>,
    pub project: String,
    pub dir: Context,
    env: Vec<(String, String)>,
}

impl Compose {
    /// A project named `project` over a copy of examples/<example>, with
    /// these variables for Compose's own substitution (BASE is added).
    pub fn new(example: &str, project: &str, env: &[(&str, &str)]) -> Option<Compose> {
        let command = compose_command()?;
        let base = base_image()?;
        let envinit = envinit_binary()?;
        let mut vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.push(("BASE".into(), base.to_string()));
        Some(Compose {
            command,
            project: project.to_string(),
            dir: context(example, &envinit, &[]),
            env: vars,
        })
    }

    /// Runs `compose -p PROJECT ARGS...` in the project's directory.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(self.command[0]);
        command
            .args(&self.command[1..])
            .args(["-p", &self.project, "-f", "compose.yaml"])
            .args(args)
            .current_dir(&self.dir.path)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        run_for(&mut command, COMMAND_TIMEOUT)
    }

    /// Like `run`, failing the test if the command fails; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "compose {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> String {
        self.ok(&["ps", "-q", service]).trim().to_string()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

// ---------------------------------------------------------------------------
// Swarm

/// A single-node swarm for one test: `docker swarm init` now, `docker swarm
/// leave --force` on drop, whatever happened in between.
pub struct Swarm {
    gwbridge_existed: bool,
}

impl Swarm {
    pub fn init() -> Swarm {
        let gwbridge_existed = run_for(
            Command::new("docker").args(["network", "inspect", "docker_gwbridge"]),
            COMMAND_TIMEOUT,
        )
        .status
        .success();
        // The guard exists before the init, so even a half-done init is
        // left again.
        let swarm = Swarm { gwbridge_existed };
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state.trim() != "active" {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        swarm
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        quietly("docker", &["swarm", "leave", "--force"]);
        if !self.gwbridge_existed {
            quietly("docker", &["network", "rm", "docker_gwbridge"]);
        }
    }
}

/// A Swarm service (or secret) removed on drop.
pub struct SwarmObject {
    kind: &'static str,
    name: String,
}

impl SwarmObject {
    pub fn service(name: &str) -> SwarmObject {
        SwarmObject {
            kind: "service",
            name: name.into(),
        }
    }

    pub fn secret(name: &str) -> SwarmObject {
        SwarmObject {
            kind: "secret",
            name: name.into(),
        }
    }
}

impl Drop for SwarmObject {
    fn drop(&mut self) {
        quietly("docker", &[self.kind, "rm", &self.name]);
    }
}

// ---------------------------------------------------------------------------
// Podman

/// Podman with the test fixture's settings (see tests/fixtures/containers.conf).
pub fn podman_env(command: &mut Command) {
    command.env(
        "CONTAINERS_CONF",
        root().join("tests/fixtures/containers.conf"),
    );
}

/// Is podman installed and able to run a container here?
pub fn have_podman() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        let mut command = Command::new("podman");
        command.args(["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
        podman_env(&mut command);
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    prerequisite(ok, "podman is not installed (apt-get install podman)")
}

/// The base image in Podman's store.
pub fn podman_base() -> Option<&'static str> {
    static IMAGE: OnceLock<Option<String>> = OnceLock::new();
    if !have_podman() {
        return None;
    }
    IMAGE.get_or_init(|| fixture("podman")).as_deref()
}
