//! envinit in a real image on the real Docker engine: Dockerfile.example,
//! built for amd64 and for arm64 (the aarch64 build, run by qemu-user
//! through binfmt_misc) with its `BASE` build argument naming a local
//! `FROM scratch` image that holds only a static busybox (no registry here
//! to give its public default). Proves each binary is truly static and
//! that `docker run` and `docker stop` get the exit codes and shutdown times
//! envinit promises.
//!
//! Needs: the static binaries (`./build`, which `./test` runs first, and
//! `./build aarch64` for arm64), a running Docker engine, /bin/busybox
//! (Debian's busybox-static) and, for arm64, Debian's busybox-static:arm64
//! unpacked into target/fixtures/arm64/busybox and qemu-aarch64 registered
//! with binfmt_misc (.ci/run does both). Missing ones skip the tests with a
//! reason, except under CI=true, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A platform the image is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Platform {
    /// Docker's name (TARGETARCH): amd64, arm64.
    docker: &'static str,
    /// The machine's name (`uname -m`), as the release files are named.
    machine: &'static str,
}

const AMD64: Platform = Platform {
    docker: "amd64",
    machine: "x86_64",
};
const ARM64: Platform = Platform {
    docker: "arm64",
    machine: "aarch64",
};
const PLATFORMS: [Platform; 2] = [AMD64, ARM64];

impl Platform {
    /// `linux/amd64`, as `--platform` takes it.
    fn flag(self) -> String {
        format!("linux/{}", self.docker)
    }

    /// The release binary `./build` makes for this platform.
    fn binary(self) -> PathBuf {
        root().join(format!(
            "target/{}-unknown-linux-musl/release/envinit",
            self.machine
        ))
    }

    /// The static busybox for this platform: the host's own for amd64,
    /// Debian's arm64 package unpacked by .ci/run for arm64.
    fn busybox(self) -> PathBuf {
        match self.docker {
            "amd64" => PathBuf::from("/bin/busybox"),
            _ => root().join("target/fixtures/arm64/busybox"),
        }
    }

    /// The image's name: unique to this checkout, so that test runs in
    /// other worktrees on the same engine neither see nor replace it.
    fn image(self) -> String {
        let mut hash: u32 = 0x811c_9dc5; // FNV-1a of the checkout's path
        for byte in root().as_os_str().as_encoded_bytes() {
            hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
        }
        format!("envinit-test-{hash:08x}:{}", self.docker)
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (or fails under CI) when a prerequisite is missing.
fn prerequisite(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!ci(), "CI=true and a prerequisite is missing: {what}");
        eprintln!("SKIPPED: {what}");
    }
    ok
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Can this host run the platform's programs: natively, or through a
/// qemu-user entry of binfmt_misc?
fn runs_here(p: Platform) -> bool {
    std::env::consts::ARCH == p.machine
        || Path::new(&format!("/proc/sys/fs/binfmt_misc/qemu-{}", p.machine)).exists()
}

/// Builds the test image for `p` once per test binary and returns its name;
/// None if it cannot be built for a missing prerequisite.
fn image(p: Platform) -> Option<String> {
    static BUILT: [OnceLock<Option<String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = &BUILT[PLATFORMS.iter().position(|&q| q == p).unwrap()];
    slot.get_or_init(|| build_image(p)).clone()
}

fn build_image(p: Platform) -> Option<String> {
    let binary = p.binary();
    if !prerequisite(
        binary.exists(),
        &format!(
            "no static {} binary: run `./build {}`",
            p.machine, p.machine
        ),
    ) || !prerequisite(
        p.busybox().exists(),
        &format!(
            "no static {} busybox at {} (Debian's busybox-static{}; .ci/run fetches it)",
            p.machine,
            p.busybox().display(),
            if p == AMD64 { "" } else { ":arm64" }
        ),
    ) || !prerequisite(
        runs_here(p),
        &format!(
            "this host cannot run {} programs: register qemu-{} with binfmt_misc (.ci/run does)",
            p.machine, p.machine
        ),
    ) || !prerequisite(
        Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success()),
        "no running Docker engine",
    ) {
        return None;
    }
    // The base image Dockerfile.example's BASE names: FROM scratch with a
    // static busybox, since no registry can give debian:bookworm-slim here.
    let base = build_base(p);
    // The build context Dockerfile.example documents. The classic builder
    // builds every stage, the other platform's too: an empty file stands in
    // for the other platform's file when it was not built.
    let dir = std::env::temp_dir().join(format!(
        "envinit-docker-{}-{}",
        p.docker,
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("examples/demo")).unwrap();
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::copy(root().join("Dockerfile.example"), dir.join("Dockerfile")).unwrap();
    for q in PLATFORMS {
        let (from, to) = (q.binary(), dir.join(format!("dist/envinit-{}", q.machine)));
        if q == p || from.exists() {
            std::fs::copy(&from, &to).unwrap();
        } else {
            std::fs::write(&to, b"").unwrap();
        }
    }
    std::fs::copy(
        root().join("examples/demo/hello.tmpl"),
        dir.join("examples/demo/hello.tmpl"),
    )
    .unwrap();
    let name = p.image();
    let image_id = || {
        let out = run(Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &name]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let replaced = image_id();
    // --no-cache: the classic builder's cache does not tell platforms apart
    // (a `FROM scratch` stage built for arm64 is found again for amd64, and
    // the build then fails on the platform mismatch).
    let out = run(Command::new("docker")
        .args(["build", "--no-cache", "--platform", &p.flag()])
        .args(["--build-arg", &format!("TARGETARCH={}", p.docker)])
        .args(["--build-arg", &format!("BASE={base}")])
        .args(["-t", &name])
        .arg(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker build ({}) failed: {log}{}",
        p.docker,
        String::from_utf8_lossy(&out.stderr)
    );
    // The classic builder keeps, untagged, the images of the stage this
    // platform does not use; and the build replaced the previous image.
    // Remove both (`docker rmi` refuses whatever something still uses).
    let built = image_id();
    let mut stale: Vec<String> = log
        .lines()
        .filter_map(|l| l.strip_prefix(" ---> "))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|id| !built.trim_start_matches("sha256:").starts_with(id))
        .map(String::from)
        .collect();
    if !replaced.is_empty() && replaced != built {
        stale.push(replaced);
    }
    if !stale.is_empty() {
        let _ = Command::new("docker").arg("rmi").args(&stale).output();
    }
    let out =
        run(Command::new("docker").args(["image", "inspect", "-f", "{{.Architecture}}", &name]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), p.docker);
    Some(name)
}

/// Builds `p.image()` with `-base` added to its repository: FROM scratch,
/// the platform's static busybox, its applets installed. Returns its name.
fn build_base(p: Platform) -> String {
    let name = p.image().replacen(':', "-base:", 1);
    let dir = std::env::temp_dir().join(format!(
        "envinit-docker-base-{}-{}",
        p.docker,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(p.busybox(), dir.join("busybox")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )
    .unwrap();
    let out = run(Command::new("docker")
        .args(["build", "--no-cache", "--platform", &p.flag(), "-t", &name])
        .arg(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "docker build of the base ({}) failed: {}{}",
        p.docker,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new("docker")
        .args(["image", "prune", "-f", "--filter", "dangling=true"])
        .output();
    name
}

/// `docker run --rm --platform P ARGS...`
fn docker_run(p: Platform, args: &[&str]) -> Output {
    run(Command::new("docker")
        .args(["run", "--rm", "--platform", &p.flag()])
        .args(args))
}

/// A detached container removed when the test ends, however it ends.
struct Container(String);

impl Container {
    fn start(p: Platform, args: &[&str]) -> Container {
        let out = run(Command::new("docker")
            .args(["run", "-d", "--platform", &p.flag()])
            .args(args));
        assert!(
            out.status.success(),
            "docker run -d: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits (bounded) until the container's output contains `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = run(Command::new("docker").args(["logs", &self.0]));
            if String::from_utf8_lossy(&out.stdout).contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} in the logs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `docker stop -t 30`; returns the exit code and how long it took.
    fn stop(&self) -> (i32, Duration) {
        let start = Instant::now();
        let out = run(Command::new("docker").args(["stop", "-t", "30", &self.0]));
        assert!(out.status.success());
        let took = start.elapsed();
        let out =
            run(Command::new("docker").args(["inspect", "-f", "{{.State.ExitCode}}", &self.0]));
        (
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap(),
            took,
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

// The behaviours checked on both platforms.

fn passes_the_exit_code(p: Platform) {
    let Some(image) = image(p) else {
        return;
    };
    let out = docker_run(p, &[&image, "echo", "hello"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"hello\n");
    // The image's programs are the platform's own (emulated for arm64).
    let out = docker_run(p, &[&image, "uname", "-m"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), p.machine);
    assert_eq!(
        docker_run(p, &[&image, "sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    let out = docker_run(p, &[&image, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}

fn renders_its_template_from_the_environment(p: Platform) {
    let Some(image) = image(p) else {
        return;
    };
    let out = docker_run(p, &[&image]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("envinit says: hello\ncpus available: "),
        "{text}"
    );
    let out = docker_run(
        p,
        &["-e", "GREETING=hi from docker run", "--cpus", "1", &image],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "envinit says: hi from docker run\ncpus available: 1\n"
    );
}

fn docker_stop_is_prompt(p: Platform) {
    let Some(image) = image(p) else {
        return;
    };
    let c = Container::start(p, &[&image, "sh", "-c", "echo ready; exec sleep 1000"]);
    c.wait_for_log("ready");
    let (code, took) = c.stop();
    assert_eq!(code, 143, "sleep killed by the forwarded SIGTERM");
    assert!(took < Duration::from_secs(10), "docker stop took {took:?}");
}

// amd64: the host's own platform.

#[test]
fn runs_in_a_from_scratch_image_and_passes_the_exit_code() {
    passes_the_exit_code(AMD64);
}

#[test]
fn the_example_image_renders_its_template_from_the_environment() {
    renders_its_template_from_the_environment(AMD64);
}

#[test]
fn a_template_error_exits_78_and_starts_nothing() {
    let Some(image) = image(AMD64) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("envinit-docker-tmpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.tmpl"), "a = {{ NOT_SET_ANYWHERE }}\n").unwrap();
    let mount = format!("{}:/t:ro", dir.display());
    let out = docker_run(
        AMD64,
        &[
            "-v",
            &mount,
            "--entrypoint",
            "/sbin/envinit",
            &image,
            "-t",
            "/t/bad.tmpl:/run/out",
            "--",
            "sh",
            "-c",
            "echo the app started",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(78));
    assert!(out.stdout.is_empty(), "the app must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/t/bad.tmpl:1:"), "{err}");
    assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
}

#[test]
fn docker_stop_is_prompt_and_gives_143() {
    docker_stop_is_prompt(AMD64);
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let Some(image) = image(AMD64) else {
        return;
    };
    let c = Container::start(
        AMD64,
        &[
            "-e",
            "ENVINIT_GRACE=1s",
            &image,
            "sh",
            "-c",
            "trap '' TERM; echo ready; sleep 1000",
        ],
    );
    c.wait_for_log("ready");
    let (code, took) = c.stop();
    assert_eq!(code, 137, "SIGKILL after the 1 s grace");
    assert!(
        took < Duration::from_secs(15),
        "docker stop -t 30 took {took:?}: envinit did not kill after its grace"
    );
}

/// With the default grace (8 s) and Docker's default stop timeout (10 s),
/// envinit's SIGKILL comes first and says so in `docker logs`; a clean
/// stop says nothing at all.
#[test]
fn the_default_grace_beats_dockers_stop_timeout_and_says_so() {
    let Some(image) = image(AMD64) else {
        return;
    };
    // An empty variable counts as unset: the image's ENVINIT_GRACE=5s
    // gives way to envinit's default.
    let c = Container::start(
        AMD64,
        &[
            "-e",
            "ENVINIT_GRACE=",
            &image,
            "sh",
            "-c",
            "trap '' TERM; echo ready; sleep 1000",
        ],
    );
    c.wait_for_log("ready");
    let start = Instant::now();
    let out = run(Command::new("docker").args(["stop", &c.0]));
    assert!(out.status.success());
    let took = start.elapsed();
    let out = run(Command::new("docker").args(["inspect", "-f", "{{.State.ExitCode}}", &c.0]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "137");
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(10),
        "docker stop took {took:?}: envinit's 8 s grace should end it before Docker's 10 s"
    );
    let logs = run(Command::new("docker").args(["logs", &c.0]));
    let err = String::from_utf8_lossy(&logs.stderr);
    assert!(
        err.contains("envinit: warn: grace period over: killing every process left grace=8s"),
        "{err}"
    );

    let c = Container::start(AMD64, &[&image, "sh", "-c", "echo ready; exec sleep 1000"]);
    c.wait_for_log("ready");
    let (code, _) = c.stop();
    assert_eq!(code, 143);
    let logs = run(Command::new("docker").args(["logs", &c.0]));
    assert_eq!(
        String::from_utf8_lossy(&logs.stderr),
        "",
        "a clean stop printed something"
    );
}

#[test]
fn orphans_are_reaped_in_the_container() {
    let Some(image) = image(AMD64) else {
        return;
    };
    // 200 orphans (the subshell exits at once, leaving `sleep 0` to PID 1);
    // then count zombies until none is left or the bound is reached.
    let script = "for i in $(seq 200); do (sleep 0 &); done; \
                  n=0; while [ $n -lt 200 ]; do z=$(ps -o stat | grep -c '^Z'); [ \"$z\" = 0 ] && break; n=$((n+1)); sleep 0.05; done; \
                  echo zombies=$z";
    let out = docker_run(AMD64, &[&image, "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "zombies=0");
}

// arm64: the aarch64 build in an arm64 image, run by qemu-user on an x86_64
// host (natively on an arm64 one).

#[test]
fn arm64_image_runs_and_passes_the_exit_code() {
    passes_the_exit_code(ARM64);
}

#[test]
fn arm64_image_renders_its_template_from_the_environment() {
    renders_its_template_from_the_environment(ARM64);
}

#[test]
fn arm64_docker_stop_is_prompt_and_gives_143() {
    docker_stop_is_prompt(ARM64);
}
