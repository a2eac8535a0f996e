//! examples/php-nginx-one on Docker (issue 15): Debian's nginx, php-fpm and
//! cron in one container under envinit, from a Procfile, the way an image
//! that ran supervisord would. The commands are the ones of the example's
//! README.
//!
//! The image is built from the examples' Debian base
//! (tests/fixtures/images.sh) with cron added from its Debian packages
//! (`apt-get download`, installed with dpkg: the base image is shared by
//! every example test and stays as it is), and the release envinit of
//! `./build` (INIT_UNDER_TEST). Needs root, Docker, debootstrap and apt;
//! missing ones skip the test with a reason, or fail it under CI=true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod engines;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use engines::{Container, docker};

/// Time for a started container to answer (two cores shared with others).
const START: Duration = Duration::from_secs(90);

/// What an engine adds to a stop on a loaded 2-core machine.
const STOP_HEADROOM: Duration = Duration::from_secs(10);

/// The image's grace period (ENVINIT_GRACE in its Dockerfile).
const GRACE: Duration = Duration::from_secs(8);

/// Debian's cron packages (what the base image lacks of it), fetched once
/// with `apt-get download` from the archive this machine uses.
fn cron_debs() -> Option<PathBuf> {
    let dir = engines::root().join("target/envinit-ex/debs-cron");
    let have = |prefix: &str| {
        std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    if have("cron_") && have("cron-daemon-common_") {
        return Some(dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let out = common::try_run_for(
        Command::new("apt-get")
            .args(["download", "-q", "cron", "cron-daemon-common"])
            .current_dir(&dir),
        Duration::from_secs(300),
    );
    let problem = match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`apt-get download cron cron-daemon-common` failed: {}",
            out.err().trim()
        )),
        Err(e) => Some(e),
    };
    common::prerequisite("cron's packages", problem).then_some(dir)
}

/// Builds the example once per test binary: the base image plus cron, then
/// the example's Dockerfile on it. Its tag (removed when the test binary
/// exits).
fn php_nginx_one_image() -> Option<String> {
    static IMAGE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    IMAGE.get_or_init(build).clone()
}

fn build() -> Option<String> {
    let (Some(base), Some(envinit)) = (engines::base_image(), engines::envinit_binary()) else {
        return None;
    };
    let debs = cron_debs()?;
    let with_cron = engines::tag("envinit-ex-base-cron");
    let context = common::TempDir::new("cron-base");
    for entry in std::fs::read_dir(&debs).unwrap().flatten() {
        std::fs::copy(entry.path(), context.path().join(entry.file_name())).unwrap();
    }
    // cron pre-depends on cron-daemon-common: configured first.
    std::fs::write(
        context.path().join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY *.deb /tmp/debs/\n\
         RUN dpkg -i /tmp/debs/cron-daemon-common_*.deb >/dev/null && \
         dpkg -i /tmp/debs/cron_*.deb >/dev/null && rm -rf /tmp/debs\n",
    )
    .unwrap();
    engines::remove_at_exit("docker", &with_cron);
    docker(&[
        "build",
        "-q",
        "--build-arg",
        &format!("BASE={base}"),
        "-t",
        &with_cron,
        context.path().to_str().unwrap(),
    ]);
    let example = engines::context("php-nginx-one", &envinit, &[]);
    let image = engines::tag("envinit-ex-php-one");
    engines::remove_at_exit("docker", &image);
    docker(&[
        "build",
        "-q",
        "--build-arg",
        &format!("BASE={with_cron}"),
        "-t",
        &image,
        example.path.to_str().unwrap(),
    ]);
    Some(image)
}

/// `ps` in the container: (pid, ppid, stat, args) of every process.
fn processes(c: &Container) -> Vec<(u32, u32, String, String)> {
    c.exec(&["ps", "-eo", "pid=,ppid=,stat=,args="])
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let pid = words.next()?.parse().ok()?;
            let ppid = words.next()?.parse().ok()?;
            let stat = words.next()?.to_string();
            Some((pid, ppid, stat, words.collect::<Vec<_>>().join(" ")))
        })
        .filter(|(_, _, _, args)| !args.starts_with("ps "))
        .collect()
}

/// The pids whose command line starts with `args`.
fn pids(c: &Container, args: &str) -> Vec<u32> {
    processes(c)
        .into_iter()
        .filter(|(_, _, _, a)| a.starts_with(args))
        .map(|(pid, ..)| pid)
        .collect()
}

/// Fails on a zombie in the container.
fn assert_no_zombies(c: &Container, when: &str) {
    let zombies: Vec<_> = processes(c)
        .into_iter()
        .filter(|(_, _, stat, _)| stat.starts_with('Z'))
        .collect();
    assert!(zombies.is_empty(), "{when}: zombies {zombies:?}");
}

/// Starts the image; the container and the address its port 8080 is
/// published on, once the page answers through php-fpm.
fn start(image: &str, name: &str) -> (Container, String) {
    let c = Container::start(
        &engines::name(name),
        &["-p", "127.0.0.1::8080", "-e", "ENVINIT_LOG=info", image],
    );
    let address = docker(&["port", &c.name, "8080"])
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    engines::wait_for("the page through php-fpm", START, || {
        engines::http_get(&address, "/").filter(|p| p.contains("served by: php-fpm as www-data"))
    });
    (c, address)
}

#[test]
fn php_nginx_one_serves_reloads_restarts_cron_and_stops_all_three_in_order() {
    let _engine = engines::engine_lock();
    let Some(image) = php_nginx_one_image() else {
        return;
    };
    let (c, address) = start(&image, "envinit-ex-php-one");
    let page = engines::http_get(&address, "/").unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    // One container, three programs under envinit (PID 1), prefixed output.
    let masters = |c: &Container| {
        (
            pids(c, "php-fpm: master process"),
            pids(c, "nginx: master process"),
        )
    };
    let (fpm, nginx) = masters(&c);
    assert_eq!((fpm.len(), nginx.len()), (1, 1), "{:?}", processes(&c));
    assert_eq!(pids(&c, "cron -f").len(), 1);
    let logs = c.logs();
    assert!(logs.contains("php-fpm | "), "{logs}");
    assert!(
        logs.contains("nginx   | ") && logs.contains("\"GET / HTTP/1.0\" 200"),
        "{logs}"
    );

    // HUP re-renders the config. Nothing changed: nobody is signalled.
    let workers = |c: &Container| {
        (
            pids(c, "nginx: worker process"),
            pids(c, "php-fpm: pool www"),
        )
    };
    let before = workers(&c);
    c.kill("HUP");
    c.wait_log(
        "config reloaded: nothing changed, the app was not signalled",
        START,
    );
    assert_eq!(workers(&c), before, "no file changed: no reload signal");
    // After `docker update --memory`, pm.max_children follows the new limit:
    // the reload changes the pool's file, so nginx gets HUP and php-fpm
    // USR2 (ENVINIT_PROC_SIGNALS): same masters, new workers.
    docker(&[
        "update",
        "--memory",
        "256m",
        "--memory-swap",
        "512m",
        &c.name,
    ]);
    c.kill("HUP");
    c.wait_log("config reloaded: files changed", START);
    c.wait_log("NOTICE: Reloading in progress", START);
    let pool = c.exec(&["cat", "/etc/php/8.2/fpm/pool.d/www.conf"]);
    assert!(pool.contains("pm.max_children = 4"), "{pool}");
    engines::wait_for("new workers of both", START, || {
        let now = workers(&c);
        let fresh =
            |old: &[u32], new: &[u32]| !new.is_empty() && new.iter().all(|p| !old.contains(p));
        (fresh(&before.0, &now.0) && fresh(&before.1, &now.1)).then_some(())
    });
    assert_eq!(
        masters(&c),
        (fpm.clone(), nginx.clone()),
        "the masters were reloaded, not restarted"
    );
    assert!(engines::http_get(&address, "/").is_some_and(|p| p.starts_with("HTTP/1.1 200")));

    // cron dies: under --restart it comes back (one warning), nothing else stops.
    let cron = pids(&c, "cron -f");
    c.exec(&["kill", "-9", &cron[0].to_string()]);
    c.wait_log(
        "process ended: restarting it (--restart) process=cron code=137 delay=1s",
        START,
    );
    engines::wait_for("cron back", START, || {
        let now = pids(&c, "cron -f");
        (now.len() == 1 && now != cron).then_some(())
    });
    assert_eq!(masters(&c), (fpm, nginx));
    assert_no_zombies(&c, "after the reload and cron's restart");

    // docker stop while a slow request runs: it completes; cron, nginx and
    // php-fpm stop in that order, gracefully, within the grace period.
    let slow = {
        let address = address.clone();
        std::thread::spawn(move || engines::http_get(&address, "/slow.php?s=3"))
    };
    engines::wait_for("the slow request in php-fpm", START, || {
        let out = common::run_for(
            Command::new("docker").args(["exec", &c.name, "test", "-e", "/tmp/slow-started"]),
            engines::COMMAND_TIMEOUT,
        );
        out.status.success().then_some(())
    });
    let (code, took) = c.stop(10);
    let response = slow.join().unwrap().unwrap_or_default();
    let logs = c.logs();
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("slow request done\n"),
        "the in-flight request: {response:?}\n{logs}"
    );
    assert_eq!(code, 0, "a clean stop of all three:\n{logs}");
    assert!(took < GRACE + STOP_HEADROOM, "the stop took {took:?}");
    assert!(!logs.contains("grace period over"), "{logs}");
    let order: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split("stopping process process=").nth(1))
        .collect();
    assert_eq!(
        order,
        [
            "cron signal=SIGTERM",
            "nginx signal=SIGQUIT",
            "php-fpm signal=SIGQUIT"
        ],
        "{logs}"
    );
}

#[test]
fn php_nginx_one_ends_with_php_fpms_code_when_its_master_is_killed() {
    let _engine = engines::engine_lock();
    let Some(image) = php_nginx_one_image() else {
        return;
    };
    let (c, _) = start(&image, "envinit-ex-php-one-kill");
    let fpm = pids(&c, "php-fpm: master process");
    let started = Instant::now();
    c.exec(&["kill", "-9", &fpm[0].to_string()]);
    let code = c.wait_exit(START);
    let logs = c.logs();
    assert_eq!(code, 137, "php-fpm's code (killed by SIGKILL):\n{logs}");
    assert!(
        logs.contains("process failed: stopping the others process=php-fpm code=137"),
        "{logs}"
    );
    // nginx and cron were stopped, not killed at the end of the grace.
    assert!(!logs.contains("grace period over"), "{logs}");
    assert!(started.elapsed() < GRACE + STOP_HEADROOM);
    assert!(
        logs.contains("stopping process process=nginx signal=SIGQUIT"),
        "{logs}"
    );
}
