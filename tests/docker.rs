//! envinit in a real image on the real Docker engine: a `FROM scratch` image
//! holding only the static envinit and a static busybox, as the README's
//! Dockerfile snippet builds it. Proves the binary is truly static and that
//! `docker run` and `docker stop` get the exit codes and shutdown times
//! envinit promises.
//!
//! Needs: the static binary (`cargo build --release --target
//! x86_64-unknown-linux-musl`, which `./test` runs first), a running Docker
//! engine, and /bin/busybox (Debian's busybox-static). Missing ones skip the
//! tests with a reason, except under CI=true, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "envinit-test:latest";

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

fn static_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-musl/release/envinit")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Builds the test image once per test binary; false if it cannot be built
/// for a missing prerequisite.
fn image() -> bool {
    static BUILT: OnceLock<bool> = OnceLock::new();
    *BUILT.get_or_init(|| {
        let binary = static_binary();
        if !prerequisite(binary.exists(), "no static binary: run `./test`, or cargo build --release --target x86_64-unknown-linux-musl")
            || !prerequisite(Path::new("/bin/busybox").exists(), "/bin/busybox missing (apt-get install busybox-static)")
            || !prerequisite(
                Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success()),
                "no running Docker engine",
            )
        {
            return false;
        }
        // The build context Dockerfile.example documents.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("envinit-docker-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("examples/demo")).unwrap();
        std::fs::copy(root.join("Dockerfile.example"), dir.join("Dockerfile")).unwrap();
        std::fs::copy(&binary, dir.join("envinit")).unwrap();
        std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
        std::fs::copy(root.join("examples/demo/hello.tmpl"), dir.join("examples/demo/hello.tmpl")).unwrap();
        let out = run(Command::new("docker").args(["build", "-q", "-t", IMAGE]).arg(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success(), "docker build failed: {}", String::from_utf8_lossy(&out.stderr));
        true
    })
}

fn docker_run(args: &[&str]) -> Output {
    run(Command::new("docker").args(["run", "--rm"]).args(args))
}

/// A detached container removed when the test ends, however it ends.
struct Container(String);

impl Container {
    fn start(args: &[&str]) -> Container {
        let out = run(Command::new("docker").args(["run", "-d"]).args(args));
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

#[test]
fn runs_in_a_from_scratch_image_and_passes_the_exit_code() {
    if !image() {
        return;
    }
    let out = docker_run(&[IMAGE, "echo", "hello"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(
        docker_run(&[IMAGE, "sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    let out = docker_run(&[IMAGE, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}

#[test]
fn the_example_image_renders_its_template_from_the_environment() {
    if !image() {
        return;
    }
    let out = docker_run(&[IMAGE]);
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
    let out = docker_run(&["-e", "GREETING=hi from docker run", "--cpus", "1", IMAGE]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "envinit says: hi from docker run\ncpus available: 1\n"
    );
}

#[test]
fn a_template_error_exits_78_and_starts_nothing() {
    if !image() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("envinit-docker-tmpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.tmpl"), "a = {{ NOT_SET_ANYWHERE }}\n").unwrap();
    let mount = format!("{}:/t:ro", dir.display());
    let out = docker_run(&[
        "-v",
        &mount,
        "--entrypoint",
        "/sbin/envinit",
        IMAGE,
        "-t",
        "/t/bad.tmpl:/run/out",
        "--",
        "sh",
        "-c",
        "echo the app started",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(78));
    assert!(out.stdout.is_empty(), "the app must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/t/bad.tmpl:1:"), "{err}");
    assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
}

#[test]
fn docker_stop_is_prompt_and_gives_143() {
    if !image() {
        return;
    }
    let c = Container::start(&[IMAGE, "sh", "-c", "echo ready; exec sleep 1000"]);
    c.wait_for_log("ready");
    let (code, took) = c.stop();
    assert_eq!(code, 143, "sleep killed by the forwarded SIGTERM");
    assert!(took < Duration::from_secs(10), "docker stop took {took:?}");
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    if !image() {
        return;
    }
    let c = Container::start(&[
        "-e",
        "ENVINIT_GRACE=1s",
        IMAGE,
        "sh",
        "-c",
        "trap '' TERM; echo ready; sleep 1000",
    ]);
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
    if !image() {
        return;
    }
    // An empty variable counts as unset: the image's ENVINIT_GRACE=5s
    // gives way to envinit's default.
    let c = Container::start(&[
        "-e",
        "ENVINIT_GRACE=",
        IMAGE,
        "sh",
        "-c",
        "trap '' TERM; echo ready; sleep 1000",
    ]);
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

    let c = Container::start(&[IMAGE, "sh", "-c", "echo ready; exec sleep 1000"]);
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
    if !image() {
        return;
    }
    // 200 orphans (the subshell exits at once, leaving `sleep 0` to PID 1);
    // then count zombies until none is left or the bound is reached.
    let script = "for i in $(seq 200); do (sleep 0 &); done; \
                  n=0; while [ $n -lt 200 ]; do z=$(ps -o stat | grep -c '^Z'); [ \"$z\" = 0 ] && break; n=$((n+1)); sleep 0.05; done; \
                  echo zombies=$z";
    let out = docker_run(&[IMAGE, "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "zombies=0");
}
