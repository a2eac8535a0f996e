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
//!
//! The images are this run's (`envinit-test-PLATFORM:RUN`, tests/engines),
//! removed when the test binary exits; every container is removed when its
//! test ends.

mod common;
mod engines;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Finished, prerequisite};
use engines::Container;

/// What Docker adds to a stop on a loaded 2-core machine: the CLI, the
/// daemon, the container's teardown.
const STOP_HEADROOM: Duration = Duration::from_secs(10);

/// The grace period Dockerfile.example sets (ENVINIT_GRACE=5s).
const IMAGE_GRACE: Duration = Duration::from_secs(5);

/// envinit's grace when none is set (docs/options.md).
const DEFAULT_GRACE: Duration = Duration::from_secs(8);

/// Docker's own stop timeout when `docker stop` is given none.
const DOCKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// The image's name: this run's, so that concurrent runs (other
    /// worktrees on the same engine) neither see nor replace it.
    fn image(self) -> String {
        engines::tag(&format!("envinit-test-{}", self.docker))
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Finished {
    common::run_for(cmd, engines::COMMAND_TIMEOUT)
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
        &format!("the static {} envinit", p.machine),
        (!binary.exists()).then(|| format!("run `./build {}`", p.machine)),
    ) || !prerequisite(
        &format!("a static {} busybox", p.machine),
        (!p.busybox().exists()).then(|| {
            format!(
                "no file {} (Debian's busybox-static{}; .ci/run fetches it)",
                p.busybox().display(),
                if p == AMD64 { "" } else { ":arm64" }
            )
        }),
    ) || !prerequisite(
        &format!("qemu-{} (binfmt_misc)", p.machine),
        (!runs_here(p)).then(|| {
            format!(
                "this host cannot run {} programs: register qemu-{} with binfmt_misc (.ci/run does)",
                p.machine, p.machine
            )
        }),
    ) || !engines::have_docker()
    {
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
        out.out().trim().to_string()
    };
    engines::remove_at_exit("docker", &name);
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
    let log = out.out();
    assert!(
        out.status.success(),
        "docker build ({}) failed: {log}{}",
        p.docker,
        out.err()
    );
    // The classic builder keeps, untagged, the images of the stage this
    // platform does not use: this build's, removed now (`docker rmi`
    // refuses whatever something still uses).
    let built = image_id();
    let stale: Vec<String> = log
        .lines()
        .filter_map(|l| l.strip_prefix(" ---> "))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|id| !built.trim_start_matches("sha256:").starts_with(id))
        .map(String::from)
        .collect();
    if !stale.is_empty() {
        let _ = common::try_run_for(
            Command::new("docker").arg("rmi").args(&stale),
            engines::COMMAND_TIMEOUT,
        );
    }
    let out =
        run(Command::new("docker").args(["image", "inspect", "-f", "{{.Architecture}}", &name]));
    assert_eq!(out.out().trim(), p.docker);
    Some(name)
}

/// Builds `p.image()` with `-base` added to its repository: FROM scratch,
/// the platform's static busybox, its applets installed. Returns its name.
fn build_base(p: Platform) -> String {
    let name = engines::tag(&format!("envinit-test-base-{}", p.docker));
    engines::remove_at_exit("docker", &name);
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
        out.out(),
        out.err()
    );
    name
}

/// `docker run --rm --platform P ARGS...` (labelled with the run).
fn docker_run(p: Platform, args: &[&str]) -> Finished {
    run(Command::new("docker")
        .args(["run", "--rm", "--platform", &p.flag()])
        .args(engines::label())
        .args(args))
}

/// A detached container of this run, removed when the test ends, however
/// it ends.
fn start(p: Platform, what: &str, args: &[&str]) -> Container {
    let platform = p.flag();
    let mut all = vec!["--platform", &platform];
    all.extend_from_slice(args);
    Container::start(&engines::name(&format!("envinit-test-{what}")), &all)
}

/// Waits (bounded) until the container's stdout contains `text`.
fn wait_for_log(c: &Container, text: &str) {
    engines::wait_for(
        &format!("{text:?} in the logs"),
        Duration::from_secs(20),
        || c.stdout().contains(text).then_some(()),
    );
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
    assert_eq!(out.out().trim(), p.machine);
    assert_eq!(
        docker_run(p, &[&image, "sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    let out = docker_run(p, &[&image, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(out.err().contains("no-such-command"));
}

fn renders_its_template_from_the_environment(p: Platform) {
    let Some(image) = image(p) else {
        return;
    };
    let out = docker_run(p, &[&image]);
    assert_eq!(out.status.code(), Some(0), "{}", out.err());
    let text = out.out();
    assert!(
        text.starts_with("envinit says: hello\ncpus available: "),
        "{text}"
    );
    let out = docker_run(
        p,
        &["-e", "GREETING=hi from docker run", "--cpus", "1", &image],
    );
    assert_eq!(
        out.out(),
        "envinit says: hi from docker run\ncpus available: 1\n"
    );
}

fn docker_stop_is_prompt(p: Platform) {
    let Some(image) = image(p) else {
        return;
    };
    let c = start(
        p,
        "stop",
        &[&image, "sh", "-c", "echo ready; exec sleep 1000"],
    );
    wait_for_log(&c, "ready");
    let (code, took) = c.stop(30);
    assert_eq!(code, 143, "sleep killed by the forwarded SIGTERM");
    // Prompt: not at the end of envinit's grace (which would say so), nor
    // at Docker's 30 s.
    assert!(!c.stderr().contains("grace period over"), "{}", c.logs());
    assert!(
        took < IMAGE_GRACE + STOP_HEADROOM,
        "docker stop took {took:?}"
    );
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
    let dir = common::TempDir::new("docker-tmpl");
    std::fs::write(dir.path().join("bad.tmpl"), "a = {{ NOT_SET_ANYWHERE }}\n").unwrap();
    let mount = format!("{}:/t:ro", dir.path().display());
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
    drop(dir);
    assert_eq!(out.status.code(), Some(78));
    assert!(out.stdout.is_empty(), "the app must not start");
    let err = out.err();
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
    let grace = Duration::from_secs(1);
    let c = start(
        AMD64,
        "grace",
        &[
            "-e",
            "ENVINIT_GRACE=1s",
            &image,
            "sh",
            "-c",
            "trap '' TERM; echo ready; sleep 1000",
        ],
    );
    wait_for_log(&c, "ready");
    let (code, took) = c.stop(30);
    assert_eq!(code, 137, "SIGKILL after the 1 s grace");
    // envinit's kill, not Docker's at 30 s.
    assert!(c.stderr().contains("grace period over"), "{}", c.logs());
    assert!(
        took >= grace && took < grace + STOP_HEADROOM,
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
    let c = start(
        AMD64,
        "default-grace",
        &[
            "-e",
            "ENVINIT_GRACE=",
            &image,
            "sh",
            "-c",
            "trap '' TERM; echo ready; sleep 1000",
        ],
    );
    wait_for_log(&c, "ready");
    let started = Instant::now();
    let out = run(Command::new("docker").args(["stop", &c.name]));
    assert!(out.status.success(), "{}", out.err());
    let took = started.elapsed();
    assert_eq!(c.exit_code(), 137);
    // envinit's SIGKILL came first: it says so (Docker's would leave no
    // line), at its grace, not before.
    let err = c.stderr();
    assert!(
        err.contains("envinit: warn: grace period over: killing every process left grace=8s"),
        "{err}"
    );
    assert!(
        took >= DEFAULT_GRACE && took < DOCKER_STOP_TIMEOUT + STOP_HEADROOM,
        "docker stop took {took:?}: envinit's 8 s grace should end it before Docker's 10 s"
    );

    let c = start(
        AMD64,
        "clean-stop",
        &[&image, "sh", "-c", "echo ready; exec sleep 1000"],
    );
    wait_for_log(&c, "ready");
    let (code, _) = c.stop(30);
    assert_eq!(code, 143);
    assert_eq!(c.stderr(), "", "a clean stop printed something");
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
    assert_eq!(out.out().trim(), "zombies=0");
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
