//! The examples under examples/, run for real: the signals app under
//! envinit as PID 1 and in an image (with and without `docker run --init`),
//! the Java, legacy and PHP-behind-nginx images on Docker, the PHP image as
//! a Swarm service, the Java image on Podman, and the migration notes of
//! docs/comparison.md. The commands are the ones the examples' READMEs and
//! docs/recipes.md show.
//!
//! Images are built from a Debian base made here with no registry
//! (tests/fixtures/images.sh: debootstrap + apt, once per run, cached by
//! content hash) and the release envinit of `./build` (INIT_UNDER_TEST).
//! Needs root, a Docker engine with Compose, and podman; missing ones skip
//! the test with a reason, or fail it under CI=true.

mod common;
mod engines;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Spec, sig};
use engines::{Compose, Container, Swarm, SwarmObject, docker, prerequisite};

/// Time for a started container to print what the test waits for (a JVM
/// on two shared cores is slow).
const START: Duration = Duration::from_secs(90);

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
        let out = engines::run_for(
            Command::new(cargo)
                .args(["build", "--quiet", "--example", "signals"])
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(engines::root()),
            Duration::from_secs(900),
        );
        if out.status.success() {
            Ok(target.join("debug/examples/signals"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    match built {
        Ok(path) => path.clone(),
        Err(e) => panic!("cargo build --example signals failed:\n{e}"),
    }
}

/// Does this envinit have `option` (issue 7's options land separately)?
fn supports(option: &str) -> bool {
    static HELP: OnceLock<String> = OnceLock::new();
    let help = HELP.get_or_init(|| {
        let out = Command::new(common::envinit()).arg("--help").output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    });
    prerequisite(
        help.contains(option),
        &format!("this envinit has no {option} yet (issue 7)"),
    )
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

/// Builds the signals image (examples/signals/Dockerfile).
fn signals_image() -> bool {
    let binary = signals_binary();
    engines::build_example(
        "docker",
        "signals",
        "Dockerfile",
        "envinit-ex-signals:latest",
        &[("signals", binary)],
    )
}

#[test]
fn docker_kill_hup_reaches_the_app_with_and_without_docker_run_init() {
    let _engine = engines::engine_lock();
    if !engines::have_docker() || !signals_image() {
        return;
    }
    for init in [false, true] {
        let name = format!("envinit-ex-signals-{}-{init}", std::process::id());
        let mut args = vec![];
        if init {
            // The engine's own tini as PID 1, envinit below it.
            args.push("--init");
        }
        args.push("envinit-ex-signals:latest");
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
        assert_eq!(
            reports(&logs, "worker", "SIGHUP"),
            0,
            "--init={init}:\n{logs}"
        );
        let (code, took) = c.stop(10);
        let logs = c.logs();
        assert_eq!(code, 143, "--init={init}: the app's own exit\n{logs}");
        assert!(
            took < Duration::from_secs(5),
            "--init={init}: stop took {took:?}"
        );
        // Main exited on SIGTERM; envinit then stopped the worker it left.
        assert_eq!(
            reports(&logs, "worker", "SIGTERM"),
            1,
            "--init={init}:\n{logs}"
        );
    }
}

// ---------------------------------------------------------------------------
// examples/java: the heap from the memory limit, exit 143 reported as 0

#[test]
fn java_heap_follows_the_memory_limit_and_a_stop_exits_0() {
    let _engine = engines::engine_lock();
    if !engines::build_example(
        "docker",
        "java",
        "Dockerfile",
        "envinit-ex-java:latest",
        &[],
    ) {
        return;
    }
    // The README's check: the JVM's own view of the rendered options.
    let flags = docker(&[
        "run",
        "--rm",
        "--memory",
        "256m",
        "--cpus",
        "1",
        "envinit-ex-java:latest",
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

    let name = format!("envinit-ex-java-{}", std::process::id());
    let c = Container::start(&name, &["--memory", "256m", "envinit-ex-java:latest"]);
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
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
}

// ---------------------------------------------------------------------------
// examples/legacy: a user, a log file, a forgotten worker

#[test]
fn legacy_app_runs_as_its_user_its_log_file_reaches_docker_logs_and_stop_ends_the_tree() {
    let _engine = engines::engine_lock();
    if !supports("--user") || !supports("--stdout") {
        return;
    }
    if !engines::build_example(
        "docker",
        "legacy",
        "Dockerfile",
        "envinit-ex-legacy:latest",
        &[],
    ) {
        return;
    }
    let name = format!("envinit-ex-legacy-{}", std::process::id());
    let c = Container::start(
        &name,
        &[
            "-e",
            "LEGACY_GREETING=hi from docker run",
            "envinit-ex-legacy:latest",
        ],
    );
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
    assert!(
        took < Duration::from_secs(5),
        "stop took {took:?} (grace 5 s)"
    );
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
    if !supports("--user") || !supports("--wait") {
        return;
    }
    let port = free_port().to_string();
    let project = format!("envinit-ex-php-{}", std::process::id());
    let Some(compose) = Compose::new("php-nginx", &project, &[("NGINX_PORT", &port)]) else {
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
            panic!(
                "no PHP page through nginx after {START:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
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
    // Both stopped gracefully (SIGQUIT), well within ENVINIT_GRACE.
    assert!(took < Duration::from_secs(10), "down took {took:?}");
}

// ---------------------------------------------------------------------------
// The PHP image as a Swarm service

#[test]
fn swarm_php_service_reads_a_secret_scales_rolls_and_every_task_stops_gracefully() {
    let _engine = engines::engine_lock();
    if !supports("--user") {
        return;
    }
    if !engines::build_example(
        "docker",
        "php-nginx",
        "php.Dockerfile",
        "envinit-ex-php:latest",
        &[],
    ) {
        return;
    }
    let service = "envinit-ex-php";
    let secret = "envinit-ex-db-password";
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
        "envinit-ex-php:latest",
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
    let logs = engines::run_for(
        Command::new("docker").args(["service", "logs", "--raw", service]),
        engines::COMMAND_TIMEOUT,
    );
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
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
    if !engines::build_example(
        "podman",
        "java",
        "Dockerfile",
        "envinit-ex-java:latest",
        &[],
    ) {
        return;
    }
    // Without and with podman's --init (catatonit, mounted as /run/podman-init).
    for init in [false, true] {
        let name = format!("envinit-ex-podman-java-{}-{init}", std::process::id());
        let mut args = vec!["--memory", "256m"];
        if init {
            args.push("--init");
        }
        args.push("envinit-ex-java:latest");
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
        assert!(
            took < Duration::from_secs(8),
            "--init={init}: stop took {took:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// docs/comparison.md: migration notes, each as the doc writes it

#[test]
fn migrating_from_tini_group_and_exit_remap_flags() {
    // tini -g -e 143 -- app
    if !common::have_unshare() {
        return;
    }
    let signals = signals_binary();
    let run = Spec::pid1(with_app(
        &["--signal-group", "--remap-exit", "143", "--"],
        &signals,
        &["--workers", "1"],
    ))
    .start();
    run.wait_stdout("ready", |t| {
        ready_pgids(t, "worker").len() == 1 && ready_pgids(t, "main").len() == 1
    });
    run.signal(sig::TERM);
    let done = run.wait();
    done.assert_code(0);
    assert_eq!(
        reports(&done.out(), "worker", "SIGTERM"),
        1,
        "{}",
        done.describe()
    );
}

#[test]
fn migrating_from_dumb_init_rewrite_with_numbers() {
    // dumb-init --rewrite 15:3 app (dumb-init signals the whole group)
    if !common::have_unshare() {
        return;
    }
    let signals = signals_binary();
    let run = Spec::pid1(with_app(
        &["--signal-group", "--rewrite", "15:3", "--"],
        &signals,
        &["--workers", "1"],
    ))
    .start();
    run.wait_stdout("ready", |t| {
        ready_pgids(t, "worker").len() == 1 && ready_pgids(t, "main").len() == 1
    });
    run.signal(sig::TERM);
    let done = run.wait();
    done.assert_code(131);
    let out = done.out();
    assert_eq!(reports(&out, "main", "SIGQUIT"), 1, "{}", done.describe());
    assert_eq!(reports(&out, "worker", "SIGQUIT"), 1, "{}", done.describe());
}

#[test]
fn migrating_from_dockerize_template_wait_and_stdout() {
    if !common::have_unshare() || !supports("--wait") || !supports("--stdout") {
        return;
    }
    let dir = common::TempDir::new("dockerize");
    // dockerize's Go template: {{ .Env.GREETING }}, {{ default .Env.PORT "80" }}
    std::fs::write(
        dir.path().join("app.conf.tmpl"),
        "greeting = {{ GREETING }}\nport = {{ PORT | default \"80\" }}\n",
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = dir.join("app.log");
    let conf = dir.join("app.conf");
    // dockerize -template app.conf.tmpl:app.conf -wait tcp://127.0.0.1:PORT
    //   -timeout 10s -stdout app.log sh -c '...'
    let done = Spec::pid1([
        "-t",
        &format!("{}:{conf}", dir.join("app.conf.tmpl")),
        "--wait",
        &format!("tcp://127.0.0.1:{port}"),
        "--wait-timeout",
        "10s",
        "--stdout",
        &log,
        "--",
        "sh",
        "-c",
        &format!("cat {conf} >>{log}; echo done >>{log}"),
    ])
    .env("GREETING", "hi")
    .run();
    drop(listener);
    done.assert_code(0);
    assert_eq!(
        done.out(),
        "greeting = hi\nport = 80\ndone\n",
        "{}",
        done.describe()
    );
}

#[test]
fn migrating_from_gosu_user() {
    // gosu www-data sh -c '...'
    if !common::have_unshare() || !supports("--user") {
        return;
    }
    let done = Spec::pid1([
        "--user",
        "www-data",
        "--",
        "sh",
        "-c",
        "id -un; id -gn; echo $HOME",
    ])
    .env("HOME", "/root")
    .run();
    done.assert_code(0);
    assert_eq!(
        done.out(),
        "www-data\nwww-data\n/var/www\n",
        "{}",
        done.describe()
    );
}

#[test]
fn migrating_from_file_env() {
    // docker-entrypoint.sh: file_env 'MYSQL_PASSWORD'; file_env
    // 'MYSQL_ROOT_PASSWORD'; exec "$@"
    if !common::have_unshare() || !supports("--export-file-var") {
        return;
    }
    let dir = common::TempDir::new("file-env");
    let secret = dir.join("db_password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    // Readable by root only, as a Docker secret is by default.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    // The convention as the official images' entrypoints implement it,
    // written for sh: exclusive, read, exported, the _FILE variable unset.
    let file_env = r#"file_env() {
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
    let app_env = |spec: Spec| {
        let done = spec
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("MYSQL_PASSWORD_FILE", &secret)
            .env("MYSQL_ROOT_PASSWORD", "r00t")
            .env("SSL_CERT_FILE", &ca)
            .env("LOG_FILE", "/var/log/app/app.log")
            .run();
        done.assert_code(0);
        let mut lines: Vec<String> = done
            .out()
            .lines()
            // What the shell itself adds.
            .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_="))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let before = app_env(Spec::pid1(["--", "sh", "-c", file_env]));
    let after = app_env(Spec::pid1([
        "--export-file-var",
        "MYSQL_PASSWORD",
        "--export-file-var",
        "MYSQL_ROOT_PASSWORD",
        "--",
        "env",
    ]));
    assert_eq!(before, after);
    assert!(
        after.contains(&"MYSQL_PASSWORD=s3cret".to_string()),
        "{after:?}"
    );
    assert!(
        after.contains(&"MYSQL_ROOT_PASSWORD=r00t".to_string()),
        "{after:?}"
    );
    assert!(after.contains(&format!("SSL_CERT_FILE={ca}")), "{after:?}");
    assert!(
        !after.iter().any(|l| l.starts_with("MYSQL_PASSWORD_FILE=")),
        "{after:?}"
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
    let out = engines::run_for(
        Command::new("apt-get")
            .args(["download", "-q", "logrotate", "libpopt0"])
            .current_dir(&dir),
        Duration::from_secs(300),
    );
    prerequisite(
        out.status.success(),
        &format!(
            "apt-get download logrotate libpopt0 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    )
    .then_some(dir)
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
    let tag = format!("envinit-ex-logrotate:{}", std::process::id());
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
    let name = format!("envinit-ex-logrotate-{}", std::process::id());
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
