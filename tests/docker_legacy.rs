//! Legacy apps (issue 7) in a real `FROM scratch` image on the real Docker
//! engine: `--user` with a numeric uid that has no passwd entry (the image
//! has no /etc/passwd at all), `--wait` on a host name that only /etc/hosts
//! knows (`docker run --add-host`: proves the static binary's musl resolver
//! works where there is no NSS), exit 69 for a dependency that never comes
//! up, `--probe` as the image's HEALTHCHECK, and `--export-file-var` with a
//! secret only root can read while the app runs as the user.
//!
//! Needs: the static binary (`./build`, which `./test` runs first), a running
//! Docker engine and /bin/busybox. Missing ones skip with a reason, except
//! under CI=true, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod engines;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Finished;

/// The image: busybox (sh, httpd, id), envinit, a page to serve, and
/// `--probe` as its HEALTHCHECK.
const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY envinit /sbin/envinit
COPY index.html /www/index.html
HEALTHCHECK --interval=1s --timeout=5s --retries=3 CMD ["/sbin/envinit", "--probe", "http://localhost:8080/index.html"]
ENTRYPOINT ["/sbin/envinit", "--"]
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"#;

/// The image's tag: this run's (tests/engines).
fn image_name() -> String {
    engines::tag("envinit-legacy-test")
}

/// Runs a docker command, bounded by the engine tests' deadline.
fn run(cmd: &mut Command) -> Finished {
    common::run_for(cmd, engines::COMMAND_TIMEOUT)
}

/// `docker run --label envinit.test.run=ID ARGS...` (so a container a
/// killed run left is swept by the next one).
fn docker_run(args: &[&str]) -> Finished {
    run(Command::new("docker")
        .arg("run")
        .args(engines::label())
        .args(args))
}

/// The tests using the image now; the first builds it, the last removes it.
static USERS: Mutex<usize> = Mutex::new(0);

/// The image, built by the first test that needs it (None, after printing
/// why, if a prerequisite is missing); removed when the last test holding
/// an [`ImageGuard`] ends, however it ends.
fn image() -> Option<ImageGuard> {
    let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
    if *users == 0 {
        let binary = engines::envinit_binary()?;
        if !common::prerequisite(
            "/bin/busybox",
            (!Path::new("/bin/busybox").exists())
                .then(|| "missing (apt-get install busybox-static)".into()),
        ) || !engines::have_docker()
        {
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("envinit-docker-legacy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::copy(&binary, dir.join("envinit")).unwrap();
        std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
        std::fs::write(dir.join("index.html"), "ok\n").unwrap();
        let out = run(Command::new("docker")
            .args(["build", "-q", "-t", &image_name()])
            .arg(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success(), "docker build failed: {}", out.err());
    }
    *users += 1;
    Some(ImageGuard)
}

/// A container removed when the test ends, however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        engines::quietly("docker", &["rm", "-f", &self.0]);
    }
}

/// One test's hold on the image (see [`image`]).
struct ImageGuard;

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let mut users = USERS.lock().unwrap_or_else(|e| e.into_inner());
        *users -= 1;
        if *users == 0 {
            engines::quietly("docker", &["rmi", "-f", &image_name()]);
        }
    }
}

#[test]
fn user_wait_and_probe_in_a_from_scratch_image() {
    let Some(_image) = image() else {
        return;
    };
    let image = image_name();
    // The app runs as uid 1234 (no passwd entry: gid 1234, HOME=/) once the
    // server that starts beside it answers at a name from /etc/hosts.
    let script = "httpd -p 8080 -h /www; exec /sbin/envinit --user 1234 \
        --wait tcp://envinit-dep:8080 --wait http://envinit-dep:8080/index.html \
        -- sh -c 'echo $(id -u) $(id -g) $HOME'";
    let out = docker_run(&[
        "--rm",
        "--add-host",
        "envinit-dep:127.0.0.1",
        "-e",
        "HOME=/root",
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        script,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1234 1234 /\n");

    // A dependency that never comes up: exit 69, the app not started.
    let out = docker_run(&[
        "--rm",
        "--add-host",
        "envinit-dep:127.0.0.1",
        "--entrypoint",
        "/sbin/envinit",
        &image,
        "--wait",
        "tcp://envinit-dep:9",
        "--wait-timeout",
        "1s",
        "--",
        "echo",
        "started",
    ]);
    assert_eq!(out.status.code(), Some(69));
    assert!(out.stdout.is_empty(), "the app must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tcp://envinit-dep:9 is not ready after 1s: connection refused"),
        "{err}"
    );

    // --probe as the image's HEALTHCHECK: healthy once httpd serves.
    let out = docker_run(&["-d", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let container = Container(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            &container.0,
        ]));
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if status == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container is still {status:?} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And a probe of a port nobody serves says which and why, exit 1.
    let out = run(Command::new("docker").args([
        "exec",
        &container.0,
        "/sbin/envinit",
        "--probe",
        "http://localhost:8080/index.html",
        "--probe",
        "tcp://localhost:8081",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        ["envinit: error: tcp://localhost:8081: connection refused"],
        "{err}"
    );
    drop(container);
}

#[test]
fn a_named_secret_only_root_can_read_reaches_the_user_and_other_file_vars_do_not_change() {
    let Some(_image) = image() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("envinit-docker-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("db_password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    // Owned by root, mode 0600, as a Docker or Swarm secret given to root.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let mount = |host: &Path, guest: &str| format!("{}:{guest}:ro", host.display());
    let script = "echo \"pw=$DB_PASSWORD file=${DB_PASSWORD_FILE-unset} \
        ssl=$SSL_CERT_FILE ssl_=${SSL_CERT-unset} id=$(id -u)\"; \
        cat /run/secrets/db_password 2>/dev/null || echo unreadable by the app";
    let out = docker_run(&[
        "--rm",
        "-v",
        &mount(&secret, "/run/secrets/db_password"),
        "-v",
        &mount(&ca, "/etc/ssl/ca.pem"),
        "-e",
        "ENVINIT_USER=1234",
        "-e",
        "ENVINIT_EXPORT_FILE_VAR=DB_PASSWORD",
        "-e",
        "DB_PASSWORD_FILE=/run/secrets/db_password",
        "-e",
        "SSL_CERT_FILE=/etc/ssl/ca.pem",
        &image_name(),
        "sh",
        "-c",
        script,
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pw=s3cret file=unset ssl=/etc/ssl/ca.pem ssl_=unset id=1234\nunreadable by the app\n"
    );
    assert!(err.is_empty(), "{err}");
}
