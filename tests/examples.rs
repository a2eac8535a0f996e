//! The examples under examples/, run for real: the signals app under
//! envinit as PID 1 and in an image (with and without `docker run --init`),
//! the Java, legacy and PHP-behind-nginx images on Docker, the PHP image as
//! a Swarm service, the Java image on Podman, and the migration notes of
//! docs/comparison.md. The commands are the ones the examples' READMEs and
//! docs/recipes.md show.
//!
//! Images are built from a Debian base made here with no registry
//! (tests/fixtures/images.sh: debootstrap + apt, once per run, cached by
//! content hash) and the release envinit of `./build` (INIT_UNDER_TEST),
//! tagged for this run (tests/engines). Needs root, a Docker engine with
//! Compose, and podman; missing ones skip the test with a reason, or fail
//! it under CI=true.
//!
//! Stop times are bounded by the image's grace period plus
//! [`STOP_HEADROOM`] (the engine's own work on a loaded 2-core machine);
//! what tells a graceful stop from one ended by envinit's SIGKILL is the
//! exit code and envinit's "grace period over" line, not the clock.

mod common;
mod engines;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Spec, sig};
use engines::{Compose, Container, Swarm, SwarmObject, docker};

/// Time for a started container to print what the test waits for (a JVM
/// on two shared cores is slow).
const START: Duration = Duration::from_secs(90);

/// What an engine adds to a stop on a loaded 2-core machine: the CLI, the
/// daemon, the container's teardown.
const STOP_HEADROOM: Duration = Duration::from_secs(10);

/// envinit's line when its grace period ran out and it sent SIGKILL.
const GRACE_OVER: &str = "grace period over";

/// Asserts a stop that the app and its processes made gracefully within
/// `grace` (the image's ENVINIT_GRACE): envinit did not have to kill, and
/// the stop took less than the grace plus [`STOP_HEADROOM`].
fn assert_graceful(took: Duration, grace: Duration, logs: &str, what: &str) {
    assert!(
        !logs.contains(GRACE_OVER),
        "{what}: envinit had to kill after its grace:\n{logs}"
    );
    assert!(
        took < grace + STOP_HEADROOM,
        "{what}: the stop took {took:?}, grace {grace:?}"
    );
}

// ---------------------------------------------------------------------------
// Helpers

/// The example app `signals` (`cargo build --example signals`), built once
/// into its own target directory: the outer `cargo test` holds the lock on
/// target/ while the tests run.
fn signals_binary() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let target = engines::root().join("target/envinit-ex/cargo");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = common::run_for(
            Command::new(cargo)
                .args(["build", "--quiet", "--example", "signals"])
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(engines::root()),
            Duration::from_secs(900),
        );
        if out.status.success() {
            Ok(target.join("debug/examples/signals"))
        } else {
            Err(out.err())
        }
    });
    match built {
        Ok(path) => path.clone(),
        Err(e) => panic!("cargo build --example signals failed:\n{e}"),
    }
}

/// envinit's options, then the app and its arguments, as one argv.
fn with_app(options: &[&str], app: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = options.iter().map(|s| s.to_string()).collect();
    argv.push(app.to_str().unwrap().to_string());
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

/// The lines of `role` (`main`, `worker`) that report `signal` (`SIGHUP`).
fn reports(text: &str, role: &str, signal: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(role) && l.contains(&format!(": {signal} (")))
        .count()
}

/// The `pgid=` of every line of `role` that says "ready".
fn ready_pgids(text: &str, role: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(role) && l.ends_with(": ready"))
        .filter_map(|l| l.split("pgid=").nth(1)?.split(':').next())
        .map(str::to_string)
        .collect()
}

/// sha256sum of a string, as hex.
fn sha256(text: &str) -> String {
    let dir = common::TempDir::new("sha");
    let file = dir.join("value");
    std::fs::write(&file, text).unwrap();
    let out = engines::ok("sha256sum", &[&file]);
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// examples/signals: what envinit forwards, rewrites and groups

#[test]
fn signals_example_sees_forwarded_and_rewritten_signals_and_its_worker_is_stopped() {
    if !common::have_unshare() {
        return;
    }
    let signals = signals_binary();
    // The README's demo: --rewrite TERM:QUIT, one worker.
    let run = Spec::pid1(with_app(
        &["--rewrite", "TERM:QUIT", "--"],
        &signals,
        &["--workers", "1"],
    ))
    .env("ENVINIT_LOG", "info")
    .start();
    run.wait_stdout("main and worker ready", |t| {
        ready_pgids(t, "main").len() == 1 && ready_pgids(t, "worker").len() == 1
    });
    run.signal_taken(sig::HUP);
    run.wait_stdout("main's SIGHUP", |t| reports(t, "main", "SIGHUP") == 1);
    run.signal_taken(sig::USR1);
    run.wait_stdout("main's SIGUSR1", |t| reports(t, "main", "SIGUSR1") == 1);
    run.signal(sig::TERM);
    let done = run.wait();
    let out = done.out();
    // SIGTERM reached the app as SIGQUIT: it exits 128+3.
    done.assert_code(131);
    assert_eq!(reports(&out, "main", "SIGQUIT"), 1, "{}", done.describe());
    assert_eq!(reports(&out, "main", "SIGTERM"), 0, "{}", done.describe());
    // The worker got nothing but the SIGTERM of the whole-tree shutdown
    // that followed the main process's exit.
    assert_eq!(reports(&out, "worker", "SIGHUP"), 0, "{}", done.describe());
    assert_eq!(reports(&out, "worker", "SIGTERM"), 1, "{}", done.describe());
    let pgids = (ready_pgids(&out, "main"), ready_pgids(&out, "worker"));
    assert_eq!(
        pgids.0, pgids.1,
        "the worker is in the main process's group"
    );
}

#[test]
fn signals_example_with_signal_group_every_process_of_the_group_gets_each_signal() {
    if !common::have_unshare() {
        return;
    }
    let signals = signals_binary();
    let run = Spec::pid1(with_app(
        &["--signal-group", "--"],
        &signals,
        &["--workers", "2"],
    ))
    .start();
    run.wait_stdout("main and two workers ready", |t| {
        ready_pgids(t, "main").len() == 1 && ready_pgids(t, "worker").len() == 2
    });
    run.signal_taken(sig::HUP);
    run.wait_stdout("SIGHUP in all three", |t| {
        reports(t, "main", "SIGHUP") == 1 && reports(t, "worker", "SIGHUP") == 2
    });
    run.signal(sig::TERM);
    let done = run.wait();
    done.assert_code(143);
    let out = done.out();
    assert_eq!(reports(&out, "main", "SIGTERM"), 1, "{}", done.describe());
    assert_eq!(reports(&out, "worker", "SIGTERM"), 2, "{}", done.describe());
}

/// Builds the signals image (examples/signals/Dockerfile); its tag.
fn signals_image() -> Option<String> {
    let binary = signals_binary();
    engines::build_example(
        "docker",
        "signals",
        "Dockerfile",
        "envinit-ex-signals",
        &[("signals", binary)],
    )
}

#[test]
fn docker_kill_hup_reaches_the_app_with_and_without_docker_run_init() {
    let _engine = engines::engine_lock();
    if !engines::have_docker() {
        return;
    }
    let Some(image) = signals_image() else {
        return;
    };
    for init in [false, true] {
        let name = engines::name(&format!("envinit-ex-signals-{init}"));
        let mut args = vec![];
        if init {
            // The engine's own tini as PID 1, envinit below it.
            args.push("--init");
        }
        args.push(&image);
        let c = Container::start(&name, &args);
        c.wait_log("worker", START);
        c.wait_log("main   pid=", START);
        let top = docker(&["top", &name, "-o", "pid,ppid,args"]);
        assert_eq!(
            top.contains("docker-init"),
            init,
            "--init={init}: PID 1 is docker-init only with --init:\n{top}"
        );
        c.kill("HUP");
        let logs = c.wait_log(": SIGHUP (1)", START);
        assert_eq!(
            reports(&logs, "main", "SIGHUP"),
            1,
            "--init={init}:\n{logs}"
        );
        let (code, took) = c.stop(10);
        let logs = c.logs();
        assert_eq!(code, 143, "--init={init}: the app's own exit\n{logs}");
        assert_graceful(
            took,
            Duration::from_secs(5),
            &logs,
            &format!("--init={init}"),
        );
        // Main exited on SIGTERM; envinit then stopped the worker it left.
        assert_eq!(
            reports(&logs, "worker", "SIGTERM"),
            1,
            "--init={init}:\n{logs}"
        );
        // Read once the worker has ended: a SIGHUP sent to it with the main
        // process's would have shown before its SIGTERM.
        assert_eq!(
            reports(&logs, "worker", "SIGHUP"),
            0,
            "--init={init}:\n{logs}"
        );
    }
}

// ---------------------------------------------------------------------------
// examples/java: the heap from the memory limit, exit 143 reported as 0

#[test]
fn java_heap_follows_the_memory_limit_and_a_stop_exits_0() {
    let _engine = engines::engine_lock();
    let Some(image) =
        engines::build_example("docker", "java", "Dockerfile", "envinit-ex-java", &[])
    else {
        return;
    };
    // The README's check: the JVM's own view of the rendered options.
    let flags = docker(&[
        "run",
        "--rm",
        "--memory",
        "256m",
        "--cpus",
        "1",
        &engines::label()[0],
        &engines::label()[1],
        &image,
        "java",
        "@/etc/app/jvm.options",
        "-XX:+PrintFlagsFinal",
        "-version",
    ]);
    let flag = |name: &str| {
        flags
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or_else(|| panic!("no {name} in -XX:+PrintFlagsFinal:\n{flags}"))
            .to_string()
    };
    // 75% of 256 MiB.
    assert_eq!(flag("MaxHeapSize"), (192u64 << 20).to_string());
    assert_eq!(flag("ActiveProcessorCount"), "1");

    let name = engines::name("envinit-ex-java");
    let c = Container::start(&name, &["--memory", "256m", &image]);
    let logs = c.wait_log("ready", START);
    let heap: u64 = logs
        .lines()
        .find_map(|l| {
            l.strip_prefix("max heap: ")?
                .strip_suffix(" MiB")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no heap line:\n{logs}"));
    // Runtime.maxMemory() leaves out one survivor space of the young
    // generation: a little below -Xmx192m, far from the JVM's default 64.
    assert!((150..=192).contains(&heap), "max heap {heap} MiB:\n{logs}");
    let (code, took) = c.stop(10);
    let logs = c.logs();
    assert_eq!(code, 0, "exit 143 remapped to 0:\n{logs}");
    assert!(logs.contains("stopping: shutdown hook ran"), "{logs}");
    assert_graceful(took, Duration::from_secs(8), &logs, "java");
}

// ---------------------------------------------------------------------------
// examples/legacy: a user, a log file, a forgotten worker

#[test]
fn legacy_app_runs_as_its_user_its_log_file_reaches_docker_logs_and_stop_ends_the_tree() {
    let _engine = engines::engine_lock();
    let Some(image) =
        engines::build_example("docker", "legacy", "Dockerfile", "envinit-ex-legacy", &[])
    else {
        return;
    };
    let name = engines::name("envinit-ex-legacy");
    let c = Container::start(&name, &["-e", "LEGACY_GREETING=hi from docker run", &image]);
    c.wait_log("tick 1", START);
    // stdout is the log file, line for line, copied by envinit (the app
    // itself writes nothing to stdout).
    let file = c.exec(&["cat", "/var/log/legacy/app.log"]);
    let logs = engines::wait_for("the log file's lines on stdout", START, || {
        let out = c.stdout();
        out.starts_with(&file).then_some(out)
    });
    assert!(logs.contains("greeting: hi from docker run"), "{logs}");
    // Both processes say who they run as (the host's ps cannot name a user
    // that exists only in the image).
    for who in ["app[", "worker["] {
        assert!(
            logs.lines()
                .any(|l| l.starts_with(who) && l.contains("]: started as legacy")),
            "{who}: {logs}"
        );
    }
    let (code, took) = c.stop(10);
    let logs = c.stdout();
    assert_eq!(code, 0, "{logs}");
    assert_graceful(took, Duration::from_secs(5), &c.stderr(), "legacy");
    // The app exited on SIGTERM without stopping its worker; envinit
    // stopped it, and copied the last lines before exiting.
    assert!(logs.contains("app["), "{logs}");
    assert_eq!(logs.matches(": stopping on SIGTERM").count(), 2, "{logs}");
}

// ---------------------------------------------------------------------------
// examples/php-nginx with Compose

#[test]
fn php_nginx_compose_serves_the_rendered_page_and_down_stops_both_cleanly() {
    let _engine = engines::engine_lock();
    let port = free_port().to_string();
    let project = engines::name("envinit-ex-php");
    let Some(compose) = Compose::new(
        "php-nginx",
        &project,
        &["php", "nginx"],
        &[("NGINX_PORT", &port)],
    ) else {
        return;
    };
    let password = format!("pw-{}-{:?}", std::process::id(), Instant::now());
    std::fs::write(
        compose.dir.path.join("db_password.txt"),
        format!("{password}\n"),
    )
    .unwrap();

    // The README's commands.
    compose.ok(&["up", "-d", "--build"]);
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + START;
    let page = loop {
        if let Some(page) = engines::http_get(&address, "/").filter(|r| r.contains("greeting:")) {
            break page;
        }
        if Instant::now() > deadline {
            let out = compose.run(&["logs", "--no-color"]);
            panic!("no PHP page through nginx after {START:?}:\n{}", out.out());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let expect = [
        "greeting: hello from compose".to_string(),
        // The secret, read through DB_PASSWORD_FILE, trailing newline gone.
        format!("db_password_sha256: {}", sha256(&password)),
        // mem_limit 512m / 64
        "pm.max_children: 8".into(),
        "memory_limit: 96M".into(),
        // --ini PHP_INI_
        "date.timezone: Europe/Paris".into(),
        "max_execution_time: 45".into(),
        "user: www-data".into(),
        "config owner: www-data".into(),
        // cpus: 1
        "X-Worker-Processes: 1".into(),
    ];
    for line in &expect {
        assert!(page.contains(line.as_str()), "no {line:?} in\n{page}");
    }
    let nginx = compose.container("nginx");
    let top = docker(&["top", &nginx, "-o", "pid,args"]);
    assert_eq!(top.matches("nginx: worker process").count(), 1, "{top}");

    let start_ts = docker(&["info", "--format", "{{.SystemTime}}"])
        .trim()
        .to_string();
    let started = Instant::now();
    compose.ok(&["down"]);
    let took = started.elapsed();
    let end_ts = docker(&["info", "--format", "{{.SystemTime}}"])
        .trim()
        .to_string();
    // How each container ended, from the engine's events.
    let filter = format!("label=com.docker.compose.project={project}");
    let events = docker(&[
        "events",
        "--since",
        &start_ts,
        "--until",
        &end_ts,
        "--filter",
        &filter,
        "--filter",
        "event=die",
        "--format",
        r#"{{index .Actor.Attributes "com.docker.compose.service"}} {{.Actor.Attributes.exitCode}}"#,
    ]);
    let mut ends: Vec<&str> = events.lines().collect();
    ends.sort_unstable();
    assert_eq!(ends, ["nginx 0", "php 0"], "exit states:\n{events}");
    // Both stopped gracefully (SIGQUIT) within compose.yaml's ENVINIT_GRACE
    // (10 s): exit 0 each, not 137.
    assert!(
        took < Duration::from_secs(10) + STOP_HEADROOM,
        "down took {took:?}"
    );
}

// ---------------------------------------------------------------------------
// The PHP image as a Swarm service

#[test]
fn swarm_php_service_reads_a_secret_scales_rolls_and_every_task_stops_gracefully() {
    let _engine = engines::engine_lock();
    let Some(image) = engines::build_example(
        "docker",
        "php-nginx",
        "php.Dockerfile",
        "envinit-ex-php",
        &[],
    ) else {
        return;
    };
    let service = &engines::name("envinit-ex-php");
    let secret = &engines::name("envinit-ex-db-password");
    let dir = common::TempDir::new("swarm");
    let password = format!("swarm-{}", std::process::id());
    std::fs::write(dir.path().join("pw"), format!("{password}\n")).unwrap();

    // Dropped last: the swarm is left whatever happens below.
    let _swarm = Swarm::init();
    let _secret = SwarmObject::secret(secret);
    docker(&["secret", "create", secret, &dir.join("pw")]);
    let _service = SwarmObject::service(service);
    let target = format!("source={secret},target=db_password");
    // The commands of docs/recipes.md, Swarm.
    docker(&[
        "service",
        "create",
        "--detach=false",
        "-q",
        "--name",
        service,
        "--no-resolve-image",
        "--secret",
        &target,
        "-e",
        "DB_PASSWORD_FILE=/run/secrets/db_password",
        "-e",
        "APP_GREETING=first",
        "-e",
        "ENVINIT_LOG=debug",
        "--limit-memory",
        "256m",
        "--stop-grace-period",
        "15s",
        &image,
    ]);
    docker(&[
        "service",
        "scale",
        "--detach=false",
        &format!("{service}=3"),
    ]);
    let containers = |greeting: &str| {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let ids = docker(&["ps", "-q", "--filter", &filter]);
        let ids: Vec<String> = ids.lines().map(str::to_string).collect();
        assert_eq!(ids.len(), 3, "three running tasks: {ids:?}");
        for id in &ids {
            let config = docker(&["exec", id, "cat", "/etc/app/config.json"]);
            assert!(
                config.contains(&format!("\"greeting\": \"{greeting}\"")),
                "{config}"
            );
            assert!(
                config.contains(&format!("\"db_password\": \"{password}\"")),
                "{config}"
            );
            let pool = docker(&["exec", id, "cat", "/etc/php/8.2/fpm/pool.d/www.conf"]);
            assert!(
                pool.contains("pm.max_children = 4\n"),
                "256 MiB / 64:\n{pool}"
            );
        }
    };
    containers("first");

    docker(&[
        "service",
        "update",
        "--detach=false",
        "-q",
        "--no-resolve-image",
        "--env-add",
        "APP_GREETING=rolled",
        service,
    ]);
    containers("rolled");
    // The three replaced tasks: shut down by the update, each with exit 0
    // (php-fpm's graceful stop on SIGQUIT, rewritten from SIGTERM).
    let old = docker(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=shutdown",
        service,
    ]);
    let old: Vec<&str> = old.lines().collect();
    assert_eq!(old.len(), 3, "{old:?}");
    for task in old {
        let status = docker(&[
            "inspect",
            "-f",
            "{{.Status.State}} {{.Status.ContainerStatus.ExitCode}}",
            task,
        ]);
        assert_eq!(status.trim(), "shutdown 0", "task {task}");
    }
    let logs = common::run_for(
        Command::new("docker").args(["service", "logs", "--raw", service]),
        engines::COMMAND_TIMEOUT,
    );
    let logs = format!("{}{}", logs.out(), logs.err());
    assert_eq!(logs.matches("config rendered").count(), 6, "{logs}");
    assert_eq!(
        logs.matches("child exited code=0 why=\"after a stop signal\" stop=SIGTERM")
            .count(),
        3,
        "{logs}"
    );
    assert!(!logs.contains(&password), "the secret never reaches a log");
}

// ---------------------------------------------------------------------------
// Podman

#[test]
fn podman_runs_the_java_image_with_the_same_render_and_stop() {
    let _engine = engines::engine_lock();
    let Some(image) =
        engines::build_example("podman", "java", "Dockerfile", "envinit-ex-java", &[])
    else {
        return;
    };
    // Without and with podman's --init (catatonit, mounted as /run/podman-init).
    for init in [false, true] {
        let name = engines::name(&format!("envinit-ex-podman-java-{init}"));
        let mut args = vec!["--memory", "256m"];
        if init {
            args.push("--init");
        }
        args.push(&image);
        let c = Container::start_with("podman", &name, &args);
        let logs = c.wait_log("ready", START);
        let options = c.exec(&["cat", "/etc/app/jvm.options"]);
        assert!(options.contains("-Xmx192m\n"), "{options}");
        assert!(logs.contains("max heap: 1"), "{logs}");
        let pid1 = c.exec(&["cat", "/proc/1/cmdline"]);
        let expected = if init {
            "/run/podman-init"
        } else {
            "/sbin/envinit"
        };
        assert!(
            pid1.starts_with(expected),
            "--init={init}: PID 1 is {pid1:?}"
        );
        let (code, took) = c.stop(10);
        let logs = c.logs();
        assert_eq!(code, 0, "--init={init}: {logs}");
        assert!(logs.contains("stopping: shutdown hook ran"), "{logs}");
        assert_graceful(
            took,
            Duration::from_secs(8),
            &logs,
            &format!("--init={init}"),
        );
    }
}

// ---------------------------------------------------------------------------
// docs/comparison.md: migration notes, each as the doc writes it

/// One migration note of docs/comparison.md, run as PID 1: what the other
/// tool's users write (`was`), and envinit's command line for it. In
/// `files`, `env` and `args`, `{dir}` is a fresh directory, `{port}` the
/// port of a TCP listener open during the run, `{signals}` the signals
/// example app.
struct Migration {
    /// The case's name, written in the doc's heading (`### From tini
    /// (`NAME`)`).
    name: &'static str,
    was: &'static str,
    /// Files made in `{dir}` first: path, content, mode.
    files: &'static [(&'static str, &'static str, u32)],
    /// Start envinit with only PATH and `env`.
    env_clear: bool,
    env: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// Send SIGTERM once the signals app's main process and its one worker
    /// are ready.
    stop: bool,
    code: i32,
    out: Out,
}

/// What the app's stdout must show.
enum Out {
    Exact(&'static str),
    /// The signals app's lines: (role, signal, how many).
    Reports(&'static [(&'static str, &'static str, usize)]),
    /// `env`'s lines (the shell's own left out) equal those `sh -c SCRIPT`
    /// gives with the same environment (the other tool's way), and include
    /// these lines.
    SameEnvAs {
        script: &'static str,
        has: &'static [&'static str],
    },
    /// Several processes: SIGTERM once stdout holds every line of
    /// `ready`; then stdout's lines, in any order, are `lines`.
    Stopped {
        ready: &'static [&'static str],
        lines: &'static [&'static str],
    },
}

/// The convention as the official images' entrypoints implement it,
/// written for sh: exclusive, read, exported, the _FILE variable unset.
const FILE_ENV: &str = r#"file_env() {
  var=$1 file_var=${1}_FILE
  eval "value=\${$var:-} path=\${$file_var:-}"
  if [ -n "$value" ] && [ -n "$path" ]; then
    echo "both $var and $file_var are set (but are exclusive)" >&2; exit 1
  fi
  if [ -n "$path" ]; then value=$(cat "$path"); fi
  export "$var=$value"
  unset "$file_var"
}
file_env MYSQL_PASSWORD
file_env MYSQL_ROOT_PASSWORD
unset var file_var value path
exec env"#;

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "migrating_from_tini_group_and_exit_remap_flags",
        was: "tini -g -e 143 -- app",
        files: &[],
        env_clear: false,
        env: &[],
        args: &[
            "--signal-group",
            "--remap-exit",
            "143",
            "--",
            "{signals}",
            "--workers",
            "1",
        ],
        stop: true,
        code: 0,
        out: Out::Reports(&[("worker", "SIGTERM", 1)]),
    },
    Migration {
        name: "migrating_from_dumb_init_rewrite_with_numbers",
        // dumb-init signals the whole group.
        was: "dumb-init --rewrite 15:3 app",
        files: &[],
        env_clear: false,
        env: &[],
        args: &[
            "--signal-group",
            "--rewrite",
            "15:3",
            "--",
            "{signals}",
            "--workers",
            "1",
        ],
        stop: true,
        code: 131,
        out: Out::Reports(&[("main", "SIGQUIT", 1), ("worker", "SIGQUIT", 1)]),
    },
    Migration {
        name: "migrating_from_dockerize_template_wait_and_stdout",
        was: "dockerize -template app.conf.tmpl:app.conf -wait tcp://127.0.0.1:PORT \
              -timeout 10s -stdout app.log sh -c '...'",
        // dockerize's Go template: {{ .Env.GREETING }}, {{ default .Env.PORT "80" }}
        files: &[(
            "app.conf.tmpl",
            "greeting = {{ GREETING }}\nport = {{ PORT | default \"80\" }}\n",
            0o644,
        )],
        env_clear: false,
        env: &[("GREETING", "hi")],
        args: &[
            "-t",
            "{dir}/app.conf.tmpl:{dir}/app.conf",
            "--wait",
            "tcp://127.0.0.1:{port}",
            "--wait-timeout",
            "10s",
            "--stdout",
            "{dir}/app.log",
            "--",
            "sh",
            "-c",
            "cat {dir}/app.conf >>{dir}/app.log; echo done >>{dir}/app.log",
        ],
        stop: false,
        code: 0,
        out: Out::Exact("greeting = hi\nport = 80\ndone\n"),
    },
    Migration {
        name: "migrating_from_gosu_user",
        was: "gosu www-data sh -c '...'",
        files: &[],
        env_clear: false,
        env: &[("HOME", "/root")],
        args: &[
            "--user",
            "www-data",
            "--",
            "sh",
            "-c",
            "id -un; id -gn; echo $HOME",
        ],
        stop: false,
        code: 0,
        out: Out::Exact("www-data\nwww-data\n/var/www\n"),
    },
    Migration {
        name: "migrating_from_file_env",
        was: "docker-entrypoint.sh: file_env 'MYSQL_PASSWORD'; file_env 'MYSQL_ROOT_PASSWORD'; \
              exec \"$@\"",
        // Readable by root only, as a Docker secret is by default.
        files: &[
            ("db_password", "s3cret\n", 0o600),
            ("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o644),
        ],
        env_clear: true,
        env: &[
            ("MYSQL_PASSWORD_FILE", "{dir}/db_password"),
            ("MYSQL_ROOT_PASSWORD", "r00t"),
            ("SSL_CERT_FILE", "{dir}/ca.pem"),
            ("LOG_FILE", "/var/log/app/app.log"),
        ],
        args: &[
            "--export-file-var",
            "MYSQL_PASSWORD",
            "--export-file-var",
            "MYSQL_ROOT_PASSWORD",
            "--",
            "env",
        ],
        stop: false,
        code: 0,
        out: Out::SameEnvAs {
            script: FILE_ENV,
            has: &[
                "MYSQL_PASSWORD=s3cret",
                "MYSQL_ROOT_PASSWORD=r00t",
                "SSL_CERT_FILE={dir}/ca.pem",
            ],
        },
    },
    Migration {
        name: "migrating_from_supervisord_conf",
        was: "supervisord -c supervisord.conf: [program:web] command=... stopsignal=QUIT; \
              [program:worker] command=worker user=www-data environment=QUEUE=\"mail\" \
              autorestart=true; stdout_logfile=/dev/stdout",
        files: &[(
            "Procfile",
            "# [program:web], then [program:worker] (priority order)\n\
             web: sh -c 'trap \"echo web got QUIT; exit 0\" QUIT; echo web up; while :; do sleep 0.05; done'\n\
             worker: QUEUE=mail sh -c 'echo worker as $(id -un) on $QUEUE; exec sleep 60'\n",
            0o644,
        )],
        env_clear: false,
        env: &[],
        args: &[
            "--procfile",
            "{dir}/Procfile",
            "--proc-stop-signal",
            "web=QUIT",
            "--proc-user",
            "worker=www-data",
            "--restart",
            "worker",
            "--proc-prefix",
        ],
        stop: false,
        code: 0,
        out: Out::Stopped {
            ready: &["web    | web up", "worker | worker as www-data on mail"],
            lines: &[
                "web    | web up",
                "worker | worker as www-data on mail",
                "web    | web got QUIT",
            ],
        },
    },
    Migration {
        name: "migrating_from_s6_overlay_services",
        was: "s6-overlay: /etc/services.d/app/run, /etc/services.d/cron/run, \
              S6_KILL_GRACETIME=3000, ENTRYPOINT [\"/init\"]",
        files: &[
            (
                "services/app/run",
                "#!/bin/sh\n# was #!/command/with-contenv sh: envinit passes the environment on\necho app up\nexec sleep 60\n",
                0o755,
            ),
            (
                "services/cron/run",
                "#!/bin/sh\necho cron up\nexec sleep 60\n",
                0o755,
            ),
            (
                "Procfile",
                "app: {dir}/services/app/run\ncron: {dir}/services/cron/run\n",
                0o644,
            ),
        ],
        env_clear: false,
        env: &[("ENVINIT_GRACE", "3s"), ("ENVINIT_RESTART", "app,cron")],
        args: &["--procfile", "{dir}/Procfile"],
        stop: false,
        code: 0,
        out: Out::Stopped {
            ready: &["app up", "cron up"],
            lines: &["app up", "cron up"],
        },
    },
    Migration {
        name: "migrating_from_multirun_commands",
        was: "multirun \"web --port 8080\" \"worker --queue mail\"",
        files: &[(
            "Procfile",
            "web: sh -c 'echo web up; exec sleep 60'\nworker: sh -c 'echo worker up; exec sleep 60'\n",
            0o644,
        )],
        env_clear: false,
        env: &[],
        args: &["--procfile", "{dir}/Procfile", "--signal-group"],
        stop: false,
        code: 0,
        out: Out::Stopped {
            ready: &["web up", "worker up"],
            lines: &["web up", "worker up"],
        },
    },
];

/// Runs one migration case; its stdout's lines, sorted, for `SameEnvAs`.
fn run_migration(case: &Migration, args: &[String], dir: &str, port: &str) -> common::Finished {
    let fill = |text: &str| -> String {
        text.replace("{dir}", dir)
            .replace("{port}", port)
            .replace("{signals}", signals_binary().to_str().unwrap())
    };
    let mut spec = Spec::pid1(args.iter().map(|a| fill(a)));
    if case.env_clear {
        spec = spec
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap());
    }
    for (key, value) in case.env {
        spec = spec.env(key, fill(value));
    }
    if let Out::Stopped { ready, .. } = case.out {
        let run = spec.start();
        run.wait_stdout("every process ready", |t| {
            ready.iter().all(|line| common::has_line(t, line))
        });
        run.signal(sig::TERM);
        return run.wait();
    }
    if !case.stop {
        return spec.run();
    }
    let run = spec.start();
    run.wait_stdout("main and worker ready", |t| {
        ready_pgids(t, "worker").len() == 1 && ready_pgids(t, "main").len() == 1
    });
    run.signal(sig::TERM);
    run.wait()
}

/// `env`'s lines, sorted, without what a shell itself adds.
fn env_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Every migration note of docs/comparison.md (the table above), as the
/// doc writes it; a failure names the case, which the doc's heading names.
#[test]
fn migrating_from_other_tools_as_docs_comparison_md_writes_it() {
    if !common::have_unshare() {
        return;
    }
    for case in MIGRATIONS {
        let what = format!("{} ({})", case.name, case.was);
        let dir = common::TempDir::new(case.name);
        let dir_s = dir.path().to_str().unwrap().to_string();
        for (path, text, mode) in case.files {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, text.replace("{dir}", &dir_s)).unwrap();
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(*mode))
                .unwrap();
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let args: Vec<String> = case.args.iter().map(|a| a.to_string()).collect();
        let done = run_migration(case, &args, &dir_s, &port);
        drop(listener);
        assert_eq!(done.code, Some(case.code), "{what}: {}", done.describe());
        let out = done.out();
        match &case.out {
            Out::Exact(text) => assert_eq!(out, *text, "{what}: {}", done.describe()),
            Out::Reports(wanted) => {
                for (role, signal, times) in *wanted {
                    assert_eq!(
                        reports(&out, role, signal),
                        *times,
                        "{what}: {role} {signal}: {}",
                        done.describe()
                    );
                }
            }
            Out::Stopped { lines, .. } => {
                let mut got: Vec<&str> = out.lines().collect();
                let mut want = lines.to_vec();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "{what}: {}", done.describe());
            }
            Out::SameEnvAs { script, has } => {
                let before = run_migration(
                    case,
                    &["--".into(), "sh".into(), "-c".into(), script.to_string()],
                    &dir_s,
                    &port,
                );
                before.assert_code(0);
                let after = env_lines(&out);
                assert_eq!(env_lines(&before.out()), after, "{what}");
                for line in *has {
                    let line = line.replace("{dir}", &dir_s);
                    assert!(after.contains(&line), "{what}: no {line:?} in {after:?}");
                }
                assert!(
                    !after
                        .iter()
                        .any(|l| l.contains("_FILE=") && l.starts_with("MYSQL_")),
                    "{what}: {after:?}"
                );
            }
        }
    }
}

/// docs/comparison.md's migration headings and the table name the same
/// cases: a heading cannot point at a case that does not exist, and no
/// case is missing from the doc.
#[test]
fn docs_comparison_md_names_every_migration_case() {
    let doc = std::fs::read_to_string(engines::root().join("docs/comparison.md")).unwrap();
    let named: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("### From "))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    let cases: Vec<&str> = MIGRATIONS.iter().map(|c| c.name).collect();
    assert_eq!(
        named, cases,
        "docs/comparison.md's headings against MIGRATIONS"
    );
}

// ---------------------------------------------------------------------------
// Debian's nginx rotated by Debian's own logrotate setting (issue 13)

/// The Debian packages logrotate and libpopt0 (what the base image lacks
/// of it), fetched once with `apt-get download` from the archive this
/// machine uses, into target/envinit-ex/debs. Installed into a test image
/// on top of the base, so the base image (shared by every example test)
/// stays as it is.
fn logrotate_debs() -> Option<PathBuf> {
    let dir = engines::root().join("target/envinit-ex/debs");
    let have = |prefix: &str| {
        std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    if have("logrotate_") && have("libpopt0_") {
        return Some(dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let out = common::try_run_for(
        Command::new("apt-get")
            .args(["download", "-q", "logrotate", "libpopt0"])
            .current_dir(&dir),
        Duration::from_secs(300),
    );
    let problem = match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`apt-get download logrotate libpopt0` failed: {}",
            out.err().trim()
        )),
        Err(e) => Some(e),
    };
    common::prerequisite("logrotate's packages", problem).then_some(dir)
}

/// The request paths of nginx's combined-format access lines.
fn requested_paths(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.split("\"GET ").nth(1)?.split(' ').next())
        .collect()
}

/// Removes an image when the test ends, however it ends.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        engines::quietly("docker", &["rmi", "-f", &self.0]);
    }
}

#[test]
fn docker_debian_nginx_rotated_by_debian_logrotate_setting_loses_no_access_line() {
    let _engine = engines::engine_lock();
    let (Some(base), Some(envinit)) = (engines::base_image(), engines::envinit_binary()) else {
        return;
    };
    let Some(debs) = logrotate_debs() else {
        return;
    };
    // The base image's nginx with its Debian configuration and Debian's
    // /etc/logrotate.d/nginx as the package ships them (`create 0640
    // www-data adm`, compress, delaycompress, a postrotate `invoke-rc.d
    // nginx rotate`), envinit following both logs.
    let context = TempDirectory::new("logrotate");
    for entry in std::fs::read_dir(&debs).unwrap().flatten() {
        std::fs::create_dir_all(context.0.join("debs")).unwrap();
        std::fs::copy(entry.path(), context.0.join("debs").join(entry.file_name())).unwrap();
    }
    std::fs::copy(&envinit, context.0.join("envinit")).unwrap();
    std::fs::write(
        context.0.join("Dockerfile"),
        "ARG BASE\n\
         FROM ${BASE}\n\
         COPY debs/ /tmp/debs/\n\
         RUN dpkg --force-depends -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs && mkdir -p /var/log/nginx\n\
         COPY envinit /sbin/envinit\n\
         ENV ENVINIT_STDOUT=/var/log/nginx/access.log ENVINIT_STDERR=/var/log/nginx/error.log\n\
         ENTRYPOINT [\"/sbin/envinit\", \"--rewrite\", \"TERM:QUIT\", \"--\"]\n\
         CMD [\"nginx\", \"-g\", \"daemon off;\"]\n",
    )
    .unwrap();
    let tag = engines::tag("envinit-ex-logrotate");
    let _image = ImageGuard(tag.clone());
    docker(&[
        "build",
        "-q",
        "--build-arg",
        &format!("BASE={base}"),
        "-t",
        &tag,
        context.0.to_str().unwrap(),
    ]);
    let name = engines::name("envinit-ex-logrotate");
    let c = Container::start(&name, &["-p", "127.0.0.1::80", &tag]);
    let address = docker(&["port", &name, "80"])
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    engines::wait_for("nginx to answer", START, || {
        engines::http_get(&address, "/ready")
    });

    // A client makes requests one after the other all along.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (done, stop, address) = (done.clone(), stop.clone(), address.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                assert!(
                    engines::http_get(&address, &format!("/r/{n}")).is_some(),
                    "request {n} got no answer"
                );
                done.store(n, std::sync::atomic::Ordering::SeqCst);
            }
            n
        })
    };
    let at_least = |count: u32| {
        engines::wait_for(&format!("{count} requests"), START, || {
            (done.load(std::sync::atomic::Ordering::SeqCst) >= count).then_some(())
        })
    };
    at_least(50);
    // Round 1: with a policy-rc.d that lets invoke-rc.d act, the postrotate
    // reaches nginx (USR1), which reopens its logs: between logrotate's
    // create and the reopen, nginx wrote to the renamed files.
    c.exec(&[
        "sh",
        "-c",
        "printf '#!/bin/sh\\nexit 0\\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d",
    ]);
    let before = done.load(std::sync::atomic::Ordering::SeqCst);
    c.exec(&["logrotate", "-f", "/etc/logrotate.d/nginx"]);
    at_least(before + 50);
    // Round 2: the image as Debian's packages leave it in a container (no
    // init system, no policy-rc.d): invoke-rc.d refuses, silently (the
    // postrotate sends its output to /dev/null), and nginx never reopens:
    // it writes the renamed file from then on, the new one stays empty.
    c.exec(&["rm", "/usr/sbin/policy-rc.d"]);
    let before = done.load(std::sync::atomic::Ordering::SeqCst);
    c.exec(&["logrotate", "-f", "/etc/logrotate.d/nginx"]);
    at_least(before + 50);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let requests = client.join().unwrap();
    let want: Vec<String> = (1..=requests).map(|n| format!("/r/{n}")).collect();
    assert_eq!(
        c.exec(&["stat", "-c", "%s", "/var/log/nginx/access.log"])
            .trim(),
        "0",
        "nginx did not reopen its log in round 2"
    );
    // Every line reaches `docker logs` while nginx runs.
    engines::wait_for("every access line in docker logs", START, || {
        let out = c.stdout();
        let got = requested_paths(&out);
        want.iter().all(|w| got.contains(&w.as_str())).then_some(())
    });
    let (code, _) = c.stop(10);
    let out = c.stdout();
    assert_eq!(code, 0, "{}", c.logs());
    let got = requested_paths(&out);
    for path in &want {
        assert_eq!(
            got.iter().filter(|p| *p == path).count(),
            1,
            "{path} is not in docker logs exactly once:\n{out}"
        );
    }
    assert_eq!(
        got.iter().filter(|p| **p != "/ready").count(),
        want.len(),
        "{out}"
    );
}

/// A scratch directory (a build context), removed on drop.
struct TempDirectory(PathBuf);

impl TempDirectory {
    fn new(name: &str) -> TempDirectory {
        let path = std::env::temp_dir().join(format!("envinit-ex-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDirectory(path)
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
