//! The container engines for the image tests (tests/examples.rs,
//! docker.rs, docker_legacy.rs, follow.rs): Docker, Compose (`docker
//! compose` or docker-compose v1), a single-node Swarm and Podman, driven
//! through their command lines with tests/common's [`run_for`] (a deadline
//! on every command, the process group killed past it); the base image
//! made by tests/fixtures/images.sh (Debian from debootstrap, no registry),
//! built once per content and reused; the example images built from
//! examples/*/ exactly as their READMEs say, with the local base passed as
//! the `BASE` build argument; and guards that remove every container,
//! project, service and secret when a test ends, however it ends.
//!
//! Shared state: every name a run gives the engine (image tags, container,
//! project, service and secret names) ends with the run's id
//! ([`common::run_id`]), and every container carries the label
//! [`RUN_LABEL`]`=ID`, so concurrent runs (other checkouts on the same
//! engine) never see or replace each other's, and only what this run made
//! is removed: containers and the like by their guards, images when the
//! test binary exits ([`remove_at_exit`]). What a killed run left is swept
//! by the next run ([`sweep`]), by those names, once its process is gone.
//! A swarm is left only if the test made it.
//!
//! A missing engine skips the test with a printed reason
//! ([`common::prerequisite`]), except under CI=true, where it fails. The
//! engine tests of examples.rs take one lock, so they run one at a time: a
//! JVM, a Compose project and a Swarm at once on two shared cores would
//! only make each other time out. A crate that has `mod engines;` has `mod
//! common;` too.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::common::{self, Finished, prerequisite, run_for, run_id};

/// How long one engine command may take (a build, a `compose up`).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the base image may take to build (debootstrap + apt).
const FIXTURE_TIMEOUT: Duration = Duration::from_secs(900);

/// The label every container a test starts carries, with the run id.
pub const RUN_LABEL: &str = "envinit.test.run";

/// `--label envinit.test.run=ID` for `docker run`/`podman run`.
pub fn label() -> [String; 2] {
    ["--label".into(), format!("{RUN_LABEL}={}", run_id())]
}

/// `BASE-ID`: a name (container, project, service, secret) of this run.
pub fn name(base: &str) -> String {
    format!("{base}-{}", run_id())
}

/// `REPOSITORY:ID`: an image tag of this run.
pub fn tag(repository: &str) -> String {
    format!("{repository}:{}", run_id())
}

/// The run id a name or tag ends with (`...-PID-START`, `...:PID-START`).
pub fn trailing_run_id(name: &str) -> Option<&str> {
    let start = name.rfind(|c: char| !c.is_ascii_digit())?;
    let pid_end = start;
    if name.as_bytes()[pid_end] != b'-' {
        return None;
    }
    let pid_start = name[..pid_end].rfind(|c: char| !c.is_ascii_digit())? + 1;
    let id = &name[pid_start..];
    let (parsed, rest) = common::split_run_id(id)?;
    (rest.is_empty() && parsed.len() == id.len()).then_some(id)
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
        "the static envinit",
        (!path.exists()).then(|| format!("no file {} (run ./build, or ./test)", path.display())),
    )
    .then_some(path)
}

// ---------------------------------------------------------------------------
// Commands with a deadline

/// Runs `program args...` (bounded by COMMAND_TIMEOUT); its stdout if it
/// succeeded, else the test fails with its stderr.
pub fn ok(program: &str, args: &[&str]) -> String {
    let out = run_for(Command::new(program).args(args), COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        out.out(),
        out.err()
    );
    out.out()
}

/// Runs and ignores the outcome, a deadline included (clean-up: it must
/// not hide the test's own failure, nor panic at exit).
pub fn quietly(program: &str, args: &[&str]) {
    let mut command = Command::new(program);
    command.args(args);
    if program == "podman" {
        podman_env(&mut command);
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _ = common::try_run_for(&mut command, Duration::from_secs(120));
    }));
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

/// Is a Docker engine running? The first call also sweeps what killed
/// runs left ([`sweep`]).
pub fn have_docker() -> bool {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    let problem = PROBLEM.get_or_init(|| {
        let problem = common::probe("docker", &["info", "--format", "{{.ServerVersion}}"]);
        if problem.is_none() {
            sweep("docker");
        }
        problem
    });
    prerequisite("docker", problem.clone())
}

/// `docker ARGS...`, its stdout; fails the test if it fails.
pub fn docker(args: &[&str]) -> String {
    ok("docker", args)
}

/// The images to remove when the test binary exits: (engine, tag).
static MADE: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

/// Removes the image `tag` of `engine` when this test binary exits (for
/// images built once and shared by its tests). A run killed before that
/// leaves it to the next run's [`sweep`].
pub fn remove_at_exit(engine: &'static str, tag: &str) {
    extern "C" fn remove_made() {
        let made = std::mem::take(&mut *MADE.lock().unwrap_or_else(|e| e.into_inner()));
        for (engine, tag) in made {
            quietly(engine, &["rmi", "-f", &tag]);
        }
    }
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: atexit takes a function pointer with C linkage that
        // lives as long as the program.
        unsafe { nix::libc::atexit(remove_made) };
    });
    MADE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((engine, tag.to_string()));
}

/// Removes what runs that are gone left in `engine` (docker or podman):
/// containers labelled [`RUN_LABEL`], Compose projects and networks,
/// images, Swarm services and secrets whose names end with the run id of a
/// process that no longer runs. Nothing of a live run, nothing without a
/// run id in its name.
pub fn sweep(engine: &'static str) {
    let list = |args: &[&str]| -> Vec<String> {
        let mut command = Command::new(engine);
        command.args(args);
        if engine == "podman" {
            podman_env(&mut command);
        }
        common::try_run_for(&mut command, COMMAND_TIMEOUT)
            .ok()
            .filter(|out| out.status.success())
            .map(|out| out.out().lines().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let dead = |id: &str| !common::run_alive(id);
    // Containers: by label.
    // Docker's `.Label` method; Podman's labels are a map.
    let label_format = if engine == "podman" {
        format!("{{{{.ID}}}} {{{{index .Labels \"{RUN_LABEL}\"}}}}")
    } else {
        format!("{{{{.ID}}}} {{{{.Label \"{RUN_LABEL}\"}}}}")
    };
    let filter = format!("label={RUN_LABEL}");
    for line in list(&["ps", "-a", "--filter", &filter, "--format", &label_format]) {
        if let Some((id, run)) = line.split_once(' ') {
            if dead(run) {
                quietly(engine, &["rm", "-f", id]);
            }
        }
    }
    if engine == "docker" {
        // Compose projects named envinit-*-ID: containers, then networks.
        let project = "com.docker.compose.project";
        let format = format!("{{{{.ID}}}} {{{{.Label \"{project}\"}}}}");
        let filter = format!("label={project}");
        for kind in ["ps", "network"] {
            let args: &[&str] = if kind == "ps" {
                &["ps", "-a", "--filter", &filter, "--format", &format]
            } else {
                &["network", "ls", "--filter", &filter, "--format", &format]
            };
            for line in list(args) {
                let Some((id, name)) = line.split_once(' ') else {
                    continue;
                };
                if name.starts_with("envinit-") && trailing_run_id(name).is_some_and(dead) {
                    let rm: &[&str] = if kind == "ps" {
                        &["rm", "-f", id]
                    } else {
                        &["network", "rm", id]
                    };
                    quietly(engine, rm);
                }
            }
        }
        // Swarm services and secrets (nothing to list without a swarm).
        for kind in ["service", "secret"] {
            for name in list(&[kind, "ls", "--format", "{{.Name}}"]) {
                if name.starts_with("envinit-") && trailing_run_id(&name).is_some_and(dead) {
                    quietly(engine, &[kind, "rm", &name]);
                }
            }
        }
    }
    // Images: envinit-* tagged with a run id.
    for image in list(&["images", "--format", "{{.Repository}}:{{.Tag}}"]) {
        let name = image.rsplit('/').next().unwrap_or(&image);
        if name.starts_with("envinit-") && trailing_run_id(&image).is_some_and(dead) {
            quietly(engine, &["rmi", "-f", &image]);
        }
    }
}

/// The base image (tests/fixtures/images.sh) in `engine`'s store, built
/// once; None (after a printed reason) when it cannot be made.
fn fixture(engine: &str) -> Option<String> {
    let script = root().join("tests/fixtures/images.sh");
    let mut command = Command::new(&script);
    command.arg(engine);
    let out = run_for(&mut command, FIXTURE_TIMEOUT);
    let image = out.out().trim().to_string();
    let log = out.err();
    if !log.is_empty() {
        let _ = write!(std::io::stderr(), "{log}");
    }
    match out.status.code() {
        Some(0) if !image.is_empty() => Some(image),
        // 69: debootstrap is missing and no image is cached.
        Some(69) => {
            prerequisite("debootstrap", Some(log.trim().to_string()));
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
/// `REPOSITORY:ID` ([`tag`]) with `engine` (docker or podman), once per
/// test binary, removed when it exits: the example's folder plus the
/// static envinit (and `extra` files: name and source) as the build
/// context, the local base as `BASE`. The image's tag, or None (after a
/// printed reason) when a prerequisite is missing.
pub fn build_example(
    engine: &'static str,
    example: &str,
    dockerfile: &str,
    repository: &str,
    extra: &[(&str, PathBuf)],
) -> Option<String> {
    static BUILT: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);
    let base = match engine {
        "podman" => podman_base(),
        _ => base_image(),
    };
    let (Some(base), Some(envinit)) = (base, envinit_binary()) else {
        return None;
    };
    let key = format!("{engine} {repository} {dockerfile}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = built.get_or_insert_with(HashMap::new).get(&key) {
        return Some(done.clone());
    }
    let context = context(example, &envinit, extra);
    let base = if engine == "podman" {
        format!("localhost/{base}")
    } else {
        base.to_string()
    };
    let image = tag(repository);
    let mut command = Command::new(engine);
    command
        .args(["build", "-q", "--build-arg"])
        .arg(format!("BASE={base}"))
        .arg("-f")
        .arg(context.path.join(dockerfile))
        .args(["-t", &image])
        .arg(&context.path);
    if engine == "podman" {
        podman_env(&mut command);
    }
    remove_at_exit(engine, &image);
    let out = run_for(&mut command, COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "{engine} build of examples/{example}/{dockerfile} failed:\n{}",
        out.err()
    );
    built
        .get_or_insert_with(HashMap::new)
        .insert(key, image.clone());
    Some(image)
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

    /// `ENGINE run -d --name NAME --label envinit.test.run=ID ARGS...`;
    /// NAME should come from [`name`].
    pub fn start_with(engine: &'static str, name: &str, args: &[&str]) -> Container {
        let container = Container {
            engine,
            name: name.to_string(),
        };
        container.engine(&["rm", "-f", name]);
        let label = label();
        let mut run = vec!["run", "-d", "--name", name, &label[0], &label[1]];
        run.extend_from_slice(args);
        let out = container.engine(&run);
        assert!(out.status.success(), "{engine} run: {}", out.err());
        container
    }

    fn engine(&self, args: &[&str]) -> Finished {
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
        format!("{}{}", out.out(), out.err())
    }

    /// Only the container's stdout so far.
    pub fn stdout(&self) -> String {
        self.engine(&["logs", &self.name]).out()
    }

    /// Only the container's stderr so far.
    pub fn stderr(&self) -> String {
        self.engine(&["logs", &self.name]).err()
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
        out.out().trim() == "true"
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
            out.err()
        );
        out.out()
    }

    /// `ENGINE kill --signal SIGNAL NAME`.
    pub fn kill(&self, signal: &str) {
        let out = self.engine(&["kill", "--signal", signal, &self.name]);
        assert!(out.status.success(), "{}", out.err());
    }

    /// `ENGINE stop -t TIMEOUT`; the exit code and how long the stop took.
    pub fn stop(&self, timeout_seconds: u32) -> (i32, Duration) {
        let start = Instant::now();
        let t = timeout_seconds.to_string();
        let out = self.engine(&["stop", "-t", &t, &self.name]);
        let took = start.elapsed();
        assert!(out.status.success(), "{}", out.err());
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
        out.out()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no exit code for {}", self.name))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        quietly(self.engine, &["rm", "-f", &self.name]);
    }
}

// ---------------------------------------------------------------------------
// Compose

/// `docker compose` (v2) if there is one, else `docker-compose` (v1).
pub fn compose_command() -> Option<Vec<&'static str>> {
    static FOUND: OnceLock<Option<Vec<&'static str>>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        if common::probe("docker", &["compose", "version"]).is_none() {
            Some(vec!["docker", "compose"])
        } else if common::probe("docker-compose", &["version"]).is_none() {
            Some(vec!["docker-compose"])
        } else {
            None
        }
    });
    prerequisite(
        "docker-compose",
        found
            .is_none()
            .then(|| "neither `docker compose` nor `docker-compose` works".to_string()),
    )
    .then(|| found.clone().unwrap_or_default())
}

/// A Compose project in a copy of an example's folder; `down` on drop,
/// with the images it built.
pub struct Compose {
    command: Vec<&'static str>,
    pub project: String,
    pub dir: Context,
    env: Vec<(String, String)>,
}

/// The override file beside the example's compose.yaml: each service's
/// image gets this run's tag ([`tag`]), so concurrent runs do not build
/// over each other's images and `down --rmi all` removes only this run's.
const OVERRIDE: &str = "compose.test-override.yaml";

impl Compose {
    /// A project named `project` (from [`name`]) over a copy of
    /// examples/<example>, with these variables for Compose's own
    /// substitution (BASE is added), and the images of `services` (those
    /// the example builds) named `envinit-ex-SERVICE-compose:ID`.
    pub fn new(
        example: &str,
        project: &str,
        services: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Compose> {
        let command = compose_command()?;
        let base = base_image()?;
        let envinit = envinit_binary()?;
        let mut vars: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.push(("BASE".into(), base.to_string()));
        let dir = context(example, &envinit, &[]);
        let mut yaml = String::from("services:\n");
        for service in services {
            yaml.push_str(&format!(
                "  {service}:\n    image: {}\n",
                tag(&format!("envinit-ex-{service}-compose"))
            ));
        }
        std::fs::write(dir.path.join(OVERRIDE), yaml).unwrap();
        Some(Compose {
            command,
            project: project.to_string(),
            dir,
            env: vars,
        })
    }

    /// Runs `compose -p PROJECT ARGS...` in the project's directory.
    pub fn run(&self, args: &[&str]) -> Finished {
        let mut command = Command::new(self.command[0]);
        command
            .args(&self.command[1..])
            .args(["-p", &self.project, "-f", "compose.yaml", "-f", OVERRIDE])
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
            out.err()
        );
        out.out()
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> String {
        self.ok(&["ps", "-q", service]).trim().to_string()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run(&["down", "-v", "--remove-orphans", "--rmi", "all", "-t", "2"])
        }));
    }
}

// ---------------------------------------------------------------------------
// Swarm

/// A single-node swarm for one test: `docker swarm init` now, unless this
/// engine is already in a swarm (someone else's: then it is used as it is
/// and left alone); `docker swarm leave --force` on drop only for the swarm
/// the test made, whatever happened in between.
pub struct Swarm {
    made: bool,
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
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let made = state.trim() != "active";
        // The guard exists before the init, so even a half-done init is
        // left again.
        let swarm = Swarm {
            made,
            gwbridge_existed,
        };
        if made {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        swarm
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if !self.made {
            return;
        }
        quietly("docker", &["swarm", "leave", "--force"]);
        if !self.gwbridge_existed {
            quietly("docker", &["network", "rm", "docker_gwbridge"]);
        }
    }
}

/// A Swarm service (or secret) removed on drop; its name comes from
/// [`name`].
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

/// Is podman installed and able to run a container here? The first call
/// also sweeps what killed runs left in its store.
pub fn have_podman() -> bool {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    let problem = PROBLEM.get_or_init(|| {
        let mut command = Command::new("podman");
        command.args(["info", "--format", "{{.Host.OCIRuntime.Name}}"]);
        podman_env(&mut command);
        let problem = match common::try_run_for(&mut command, COMMAND_TIMEOUT) {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!("`podman info` failed: {}", out.err().trim())),
            Err(e) => Some(format!("{e} (apt-get install podman)")),
        };
        if problem.is_none() {
            sweep("podman");
        }
        problem
    });
    prerequisite("podman", problem.clone())
}

/// The base image in Podman's store.
pub fn podman_base() -> Option<&'static str> {
    static IMAGE: OnceLock<Option<String>> = OnceLock::new();
    if !have_podman() {
        return None;
    }
    IMAGE.get_or_init(|| fixture("podman")).as_deref()
}
