//! Reloads (issue 16), run for real: envinit as PID 1 (`unshare`) in front
//! of Debian's nginx from this machine, rendering the value nginx serves
//! from a secret laid out as a Kubernetes secret volume (`..TIMESTAMP/`,
//! `..data`, `NAME -> ..data/NAME`), under a load of concurrent requests
//! over loopback, reloaded by SIGHUP and by `--watch` on a `..data` swap;
//! failed reloads (a secret removed, a path refused); a burst of changes
//! as one reload; `--watch` idle with no wake-up at all; `--watch-limits`
//! on a real cgroup's memory limit; `--check --diff` applied by `patch`.
//! Then the same on the Docker engine with the examples' images: nginx
//! reloaded by `docker kill --signal HUP` and by a `..data` swap in a
//! bind-mounted volume, the java example after `docker update --memory`,
//! php-fpm reloading on USR2 with `pm.max_children` from the memory limit,
//! and `docker exec ... envinit --check --diff` after `docker update`, its
//! secret masked.
//!
//! Synchronised on events: lines on envinit's stderr, HTTP answers, files,
//! /proc. The one window of time measured is the idle test's: a wake-up is
//! something that did not happen, so it is counted over a period.

mod common;
mod engines;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{EVENT_TIMEOUT, Spec, TempDir, have_unshare, prerequisite, py_child, sig, wait_until};
use engines::{Container, docker};

// ---------------------------------------------------------------------------
// Helpers

/// Kubernetes' secret volume, as its atomic writer makes it: the files in
/// `..TIMESTAMP/`, `..data -> ..TIMESTAMP`, and `NAME -> ..data/NAME`. A
/// second call is the update: a new `..TIMESTAMP/`, a `..data_tmp` symlink
/// renamed over `..data` (one atomic step), the old directory removed.
fn k8s_volume(dir: &Path, files: &[(&str, &str)]) {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir).unwrap();
    let ts = format!(
        "..2026_12_03_10_00_{:02}.{}",
        SERIAL.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    );
    std::fs::create_dir(dir.join(&ts)).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(&ts).join(name), content).unwrap();
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for (name, _) in files {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.0 request on a new connection: the status and the body.
fn get(address: &str) -> Result<(u16, String), String> {
    let addr = address.parse().map_err(|e| format!("{e}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// Answers 200.
    ok: u64,
    /// Everything else: another status, a refused or reset connection.
    bad: Vec<String>,
    /// The bodies, in the order first seen.
    bodies: Vec<String>,
}

/// A load of concurrent requests over loopback: `clients` threads, each
/// making one request after the other on new connections.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(address: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, done, tally) = (stop.clone(), done.clone(), tally.clone());
                let address = address.to_string();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let answer = get(&address);
                        let mut t = tally.lock().unwrap();
                        match answer {
                            Ok((200, body)) => {
                                t.ok += 1;
                                if !t.bodies.contains(&body) {
                                    t.bodies.push(body);
                                }
                            }
                            Ok((status, body)) => t.bad.push(format!("{status}: {body}")),
                            Err(e) => t.bad.push(e),
                        }
                        drop(t);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Load {
            stop,
            done,
            tally,
            threads,
        }
    }

    /// Waits until `more` requests more were answered (or failed).
    fn wait_more(&self, more: u64) {
        let target = self.done.load(Ordering::SeqCst) + more;
        wait_until(&format!("{more} more requests"), EVENT_TIMEOUT, || {
            (self.done.load(Ordering::SeqCst) >= target).then_some(())
        });
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

/// Is `program` on PATH (the test's real dependency)?
fn have(program: &str) -> bool {
    let found = common::try_run_for(
        Command::new("sh").args(["-c", &format!("command -v {program}")]),
        common::COMMAND_TIMEOUT,
    )
    .is_ok_and(|o| o.status.success());
    prerequisite(
        program,
        (!found).then(|| format!("{program} is not installed")),
    )
}

/// The lines of `text` that are envinit's errors.
fn errors(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("envinit: error:"))
        .collect()
}

/// The staged files envinit may have left in `dir`.
fn staged(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".envinit-"))
        .collect()
}

/// Context switches of `pid` so far (voluntary + involuntary): each
/// wake-up from a blocking call is one.
fn switches(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------
// nginx under envinit as PID 1

/// nginx serving `token=<the secret>` on `port`, its files in `dir`.
const NGINX_TEMPLATE: &str = "\
worker_processes 2;
pid {{ DIR }}/nginx.pid;
error_log stderr notice;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path {{ DIR }}/tmp/body;
    proxy_temp_path {{ DIR }}/tmp/proxy;
    fastcgi_temp_path {{ DIR }}/tmp/fastcgi;
    uwsgi_temp_path {{ DIR }}/tmp/uwsgi;
    scgi_temp_path {{ DIR }}/tmp/scgi;
    server {
        listen 127.0.0.1:{{ PORT }};
        location / { default_type text/plain; return 200 \"token={{ secrets.token }}\"; }
    }
}
";

/// Starts nginx as envinit's child, its config rendered from the secret
/// volume `dir/secrets`; returns envinit, nginx's address and master pid.
fn nginx(dir: &TempDir, extra: &[&str]) -> (common::Running, String, i32) {
    let port = free_port();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("nginx.conf.tmpl"), NGINX_TEMPLATE).unwrap();
    let mut args = vec![
        "--secrets-dir".to_string(),
        dir.join("secrets"),
        "-t".to_string(),
        format!("{}:{}", dir.join("nginx.conf.tmpl"), dir.join("nginx.conf")),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(
        [
            "--rewrite",
            "TERM:QUIT",
            "--",
            "nginx",
            "-g",
            "daemon off;",
            "-p",
            &dir.join(""),
            "-e",
            "stderr",
            "-c",
        ]
        .map(String::from),
    );
    args.push(dir.join("nginx.conf"));
    let running = Spec::pid1(&args)
        .env("DIR", dir.path())
        .env("PORT", port.to_string())
        .env("ENVINIT_LOG", "info")
        .timeout(Duration::from_secs(120))
        .start();
    let address = format!("127.0.0.1:{port}");
    wait_until("nginx to answer", EVENT_TIMEOUT, || get(&address).ok());
    let master = running.main_child("nginx");
    (running, address, master)
}

/// Stops envinit and nginx (SIGTERM, forwarded as QUIT) and returns the
/// stderr.
fn stop(running: common::Running) -> String {
    running.signal(sig::TERM);
    let finished = running.wait();
    finished.assert_code(0);
    finished.err()
}

/// The reload a test triggers: `reload()` swaps the secret (and signals);
/// nginx must then serve the new token with the same master, and no
/// request of the load may fail.
fn nginx_reload_under_load(extra: &[&str], reload: impl FnOnce(&Path, &common::Running)) {
    if !have_unshare() || !have("nginx") {
        return;
    }
    let dir = TempDir::new("reload-nginx");
    k8s_volume(&dir.path().join("secrets"), &[("token", "old-secret\n")]);
    let (running, address, master) = nginx(&dir, extra);
    assert_eq!(get(&address).unwrap(), (200, "token=old-secret".into()));
    let load = Load::start(&address, 8);
    load.wait_more(200);
    let started = Instant::now();
    reload(&dir.path().join("secrets"), &running);
    wait_until("nginx to serve the new token", EVENT_TIMEOUT, || {
        (get(&address).ok()?.1 == "token=new-secret").then_some(())
    });
    let took = started.elapsed();
    load.wait_more(500);
    let tally = load.finish();
    assert!(
        tally.bad.is_empty(),
        "{} of {} requests failed during the reload: {:?}",
        tally.bad.len(),
        tally.ok + tally.bad.len() as u64,
        &tally.bad[..tally.bad.len().min(5)]
    );
    assert_eq!(
        tally.bodies,
        vec!["token=old-secret".to_string(), "token=new-secret".into()],
        "the load saw the old value, then the new one"
    );
    assert_eq!(
        running.main_child("nginx"),
        master,
        "the same master, reloaded"
    );
    let master_file = std::fs::read_to_string(dir.path().join("nginx.pid")).unwrap();
    let err = stop(running);
    assert!(err.contains("reconfiguring"), "nginx reloaded:\n{err}");
    assert_eq!(
        err.matches("config reloaded: files changed").count(),
        1,
        "{err}"
    );
    assert!(
        !err.contains("old-secret") && !err.contains("new-secret"),
        "no secret in the logs:\n{err}"
    );
    common::note(&format!(
        "nginx reloaded in {took:?} under {} requests, none failed (master pid {}, {})",
        tally.ok,
        master_file.trim(),
        err.lines()
            .find(|l| l.contains("files changed"))
            .unwrap_or_default()
    ));
}

#[test]
fn nginx_serves_a_rotated_secret_after_sighup_same_master_no_request_lost() {
    nginx_reload_under_load(&[], |secrets, running| {
        k8s_volume(secrets, &[("token", "new-secret\n")]);
        running.signal(sig::HUP);
    });
}

#[test]
fn nginx_serves_a_rotated_secret_after_a_data_swap_with_watch_no_request_lost() {
    nginx_reload_under_load(&["--watch"], |secrets, _| {
        k8s_volume(secrets, &[("token", "new-secret\n")]);
    });
}

// ---------------------------------------------------------------------------
// Failed reloads, bursts, idleness

/// envinit rendering `token = {{ secrets.token }}` into `dir/out/app.conf`
/// for a child that reports every signal it gets.
fn reporter(dir: &TempDir, extra: &[&str]) -> Option<common::Running> {
    let child = py_child("report", &["--exit-on", "15"])?;
    std::fs::write(
        dir.path().join("app.conf.tmpl"),
        "# rendered by envinit\ntoken = {{ secrets.token }}\n",
    )
    .unwrap();
    let mut args: Vec<std::ffi::OsString> = vec![
        "--secrets-dir".into(),
        dir.join("secrets").into(),
        "-t".into(),
        format!("{}:{}", dir.join("app.conf.tmpl"), dir.join("out/app.conf")).into(),
    ];
    args.extend(extra.iter().map(Into::into));
    args.push("--".into());
    args.extend(child);
    let running = Spec::pid1(args)
        .env("ENVINIT_LOG", "info")
        .timeout(Duration::from_secs(60))
        .start();
    running.wait_line("ready");
    Some(running)
}

/// Waits for the `n`th line of stderr that contains `text`.
fn wait_err(running: &common::Running, text: &str, n: usize) {
    let found = running.stderr.wait_for(EVENT_TIMEOUT, |t| {
        (t.matches(text).count() >= n).then_some(())
    });
    assert!(
        found.is_some(),
        "no {n} x {text:?} on stderr:\n{}",
        running.stderr.text()
    );
}

#[test]
fn a_failed_reload_keeps_the_files_signals_nobody_and_says_so_once() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("reload-fail");
    let secrets = dir.path().join("secrets");
    k8s_volume(&secrets, &[("token", "first\n")]);
    let Some(running) = reporter(&dir, &[]) else {
        return;
    };
    let dest = dir.path().join("out/app.conf");
    let rendered = std::fs::read_to_string(&dest).unwrap();
    assert!(rendered.contains("token = first"));

    // 1. The secret removed (a missing value): one error line, at the
    //    template's line and column.
    std::fs::remove_file(secrets.join("token")).unwrap();
    running.signal(sig::HUP);
    wait_err(&running, "reload failed", 1);
    let err = running.stderr.text();
    assert_eq!(errors(&err).len(), 1, "{err}");
    assert!(
        errors(&err)[0].contains(&format!(
            "{}:2:12: secret token is not in",
            dir.join("app.conf.tmpl")
        )),
        "{err}"
    );

    // 2. A path refused: the secrets' directory belongs to another user,
    //    whose token is a symlink to a file of root's (/etc/shadow).
    symlink("/etc/shadow", secrets.join("token")).unwrap();
    for path in [&secrets, &secrets.join("token")] {
        std::os::unix::fs::lchown(path, Some(4242), Some(4242)).unwrap();
    }
    running.signal(sig::HUP);
    wait_err(&running, "reload failed", 2);
    let err = running.stderr.text();
    assert_eq!(errors(&err).len(), 2, "{err}");
    assert!(errors(&err)[1].contains("refused"), "{err}");

    // 3. A file that cannot be read: a FIFO where the secret was (a plain
    //    open would block PID 1 for good; no writer ever comes).
    std::fs::remove_file(secrets.join("token")).unwrap();
    std::os::unix::fs::lchown(&secrets, Some(0), Some(0)).unwrap();
    nix::unistd::mkfifo(
        &secrets.join("token"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    running.signal(sig::HUP);
    wait_err(&running, "reload failed", 3);
    let err = running.stderr.text();
    assert_eq!(errors(&err).len(), 3, "{err}");
    assert!(errors(&err)[2].contains("is not a regular file"), "{err}");

    // Old file kept, nothing staged, the app not signalled, envinit runs.
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), rendered);
    assert!(staged(dest.parent().unwrap()).is_empty());
    assert!(common::alive(running.init_pid()));
    let out = running.stdout.text();
    assert!(!out.contains("sig "), "the app got a signal:\n{out}");
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let first = shadow.lines().next().unwrap_or("root:");
    assert!(!err.contains(first));

    // Fixed: the next reload goes through and the app is told.
    std::fs::remove_file(secrets.join("token")).unwrap();
    std::fs::write(secrets.join("token"), "second\n").unwrap();
    running.signal(sig::HUP);
    running.wait_line(&format!("sig {} from 1", sig::HUP));
    assert!(
        std::fs::read_to_string(&dest)
            .unwrap()
            .contains("token = second")
    );
    let finished = {
        running.signal(sig::TERM);
        running.wait()
    };
    finished.assert_code(0);
    assert_eq!(errors(&finished.err()).len(), 3, "{}", finished.err());
}

#[test]
fn a_burst_of_changes_is_one_reload_and_the_app_is_told_once() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("reload-burst");
    let secrets = dir.path().join("secrets");
    k8s_volume(&secrets, &[("token", "v0\n")]);
    let Some(running) = reporter(&dir, &["--watch"]) else {
        return;
    };
    // 30 updates of the volume as fast as they come.
    for n in 1..=30 {
        k8s_volume(&secrets, &[("token", &format!("v{n}\n"))]);
    }
    wait_err(&running, "why=watch", 1);
    // The reload signal then: it finds nothing to change.
    running.signal(sig::HUP);
    wait_err(&running, "why=signal", 1);
    let err = running.stderr.text();
    assert_eq!(err.matches("why=watch").count(), 1, "{err}");
    assert!(
        err.contains("nothing changed, the app was not signalled why=signal"),
        "{err}"
    );
    let dest = dir.path().join("out/app.conf");
    assert!(
        std::fs::read_to_string(&dest)
            .unwrap()
            .contains("token = v30")
    );
    running.signal(sig::TERM);
    let finished = running.wait();
    finished.assert_code(0);
    let hups = finished
        .out()
        .matches(&format!("sig {} from 1\n", sig::HUP))
        .count();
    assert_eq!(hups, 1, "{}", finished.describe());
}

#[test]
fn watch_with_nothing_happening_never_wakes_envinit() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("reload-idle");
    k8s_volume(&dir.path().join("secrets"), &[("token", "idle\n")]);
    let Some(running) = reporter(&dir, &["--watch"]) else {
        return;
    };
    let pid = running.init_pid();
    // A second to settle (the child's own start), then a window of three.
    std::thread::sleep(Duration::from_secs(1));
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs(3));
    let after = switches(pid);
    assert_eq!(after, before, "envinit woke up {} times", after - before);
    // And it still answers a change.
    k8s_volume(&dir.path().join("secrets"), &[("token", "awake\n")]);
    running.wait_line(&format!("sig {} from 1", sig::HUP));
    running.signal(sig::TERM);
    running.wait().assert_code(0);
}

// ---------------------------------------------------------------------------
// --watch-limits on a real cgroup

/// A memory cgroup of this machine for one test (v1's memory controller or
/// v2), removed on drop.
struct MemoryCgroup {
    dir: PathBuf,
    limit_file: &'static str,
}

impl MemoryCgroup {
    fn new(name: &str) -> Option<MemoryCgroup> {
        let (root, limit_file) =
            if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
            } else if Path::new("/sys/fs/cgroup/cgroup.subtree_control").exists() {
                ("/sys/fs/cgroup", "memory.max")
            } else {
                prerequisite(
                    "a memory cgroup",
                    Some("no cgroup v1 memory controller nor cgroup v2".into()),
                );
                return None;
            };
        let dir = Path::new(root).join(format!("envinit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        if let Err(e) = std::fs::create_dir(&dir) {
            prerequisite(
                "a memory cgroup",
                Some(format!("mkdir {}: {e}", dir.display())),
            );
            return None;
        }
        Some(MemoryCgroup { dir, limit_file })
    }

    fn limit(&self, bytes: u64) {
        std::fs::write(self.dir.join(self.limit_file), bytes.to_string()).unwrap();
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Its processes are gone by now (the run was waited for).
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn watch_limits_rerenders_when_the_memory_limit_changes_and_tells_the_app() {
    if !have_unshare() {
        return;
    }
    let Some(cgroup) = MemoryCgroup::new("limits") else {
        return;
    };
    let Some(child) = py_child("report", &["--exit-on", "15"]) else {
        return;
    };
    cgroup.limit(256 << 20);
    let dir = TempDir::new("reload-limits");
    std::fs::write(
        dir.path().join("jvm.options.tmpl"),
        "-Xmx{{ container.memory_mib | percent 75 }}m\n",
    )
    .unwrap();
    let dest = dir.path().join("jvm.options");
    // envinit starts inside the cgroup: the shell moves itself there, then
    // becomes unshare, whose child envinit is.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare --pid --fork --mount-proc \"$@\"",
        cgroup.dir.display()
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", &script, "sh"])
        .arg(common::envinit())
        .args(["--watch-limits", "200ms", "-t"])
        .arg(format!(
            "{}:{}",
            dir.join("jvm.options.tmpl"),
            dest.display()
        ))
        .arg("--")
        .args(&child)
        .env("ENVINIT_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let running = common::Running::spawn(
        command,
        common::Mode::Pid1,
        None,
        Duration::from_secs(60),
        None,
    );
    running.wait_line("ready");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "-Xmx192m\n");
    // `docker update --memory 128m` does this to the container's cgroup.
    cgroup.limit(128 << 20);
    running.wait_line(&format!("sig {} from 1", sig::HUP));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "-Xmx96m\n");
    running.signal(sig::TERM);
    let finished = running.wait();
    let err = finished.err();
    assert!(
        err.contains("config reloaded: files changed, the app gets its reload signal why=limits"),
        "{err}"
    );
    assert_eq!(
        finished.out().matches("sig 1 from").count(),
        1,
        "{}",
        finished.describe()
    );
}

// ---------------------------------------------------------------------------
// --check --diff

#[test]
fn check_diff_is_what_patch_applies_and_masks_secrets() {
    let dir = TempDir::new("reload-diff");
    let secrets = dir.path().join("secrets");
    k8s_volume(&secrets, &[("db", "hunter2\n")]);
    let template = dir.path().join("app.ini.tmpl");
    let body: String = (1..=30).map(|n| format!("line{n} = {n}\n")).collect();
    std::fs::write(
        &template,
        format!("workers = {{{{ WORKERS }}}}\n{body}mode = {{{{ MODE }}}}\n"),
    )
    .unwrap();
    let public = dir.path().join("public.tmpl");
    std::fs::write(&public, format!("{body}workers = {{{{ WORKERS }}}}\n")).unwrap();
    let secret = dir.path().join("secret.tmpl");
    std::fs::write(
        &secret,
        "user = app\npassword = {{ secrets.db }}\nworkers = {{ WORKERS }}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut spec = Spec::direct(
            [
                "--secrets-dir",
                secrets.to_str().unwrap(),
                "-t",
                &format!("{}:{}", template.display(), out.join("app.ini").display()),
                "-t",
                &format!("{}:{}", public.display(), out.join("public.conf").display()),
                "-t",
                &format!("{}:{}", secret.display(), out.join("secret.conf").display()),
            ]
            .into_iter()
            .chain(extra.iter().copied()),
        );
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        spec.run()
    };
    let first = [("WORKERS", "2"), ("MODE", "prod")];
    run(&["--", "true"], &first).assert_code(0);

    // Nothing would change: no output, exit 0.
    let same = run(&["--check", "--diff"], &first);
    same.assert_code(0);
    assert_eq!(same.out(), "");

    // Another environment and a rotated secret.
    let old: Vec<(String, Vec<u8>)> = ["app.ini", "public.conf", "secret.conf"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(out.join(n)).unwrap()))
        .collect();
    k8s_volume(&secrets, &[("db", "correct horse\n")]);
    let next = [("WORKERS", "4"), ("MODE", "test")];
    let diff = run(&["--diff"], &next);
    diff.assert_code(1);
    let text = diff.out();
    assert!(
        !text.contains("hunter2") && !text.contains("correct horse"),
        "{text}"
    );
    assert!(text.contains("\n-password = ***\n"), "{text}");
    assert!(text.contains("\n+password = ***\n"), "{text}");
    assert!(
        text.contains("\n-workers = ***\n"),
        "old values hidden in a file with a secret: {text}"
    );
    assert!(text.contains("\n+workers = 4\n"), "{text}");
    assert!(text.contains(" user = app\n"), "{text}");
    // Two changes 31 lines apart: two hunks, as diff -u makes them.
    assert!(
        text.contains("@@ -1,4 +1,4 @@\n-workers = 2\n+workers = 4\n"),
        "{text}"
    );
    assert!(text.contains("@@ -29,4 +29,4 @@\n line28 = 28\n line29 = 29\n line30 = 30\n-mode = prod\n+mode = test\n"), "{text}");
    // Nothing was written.
    for (name, bytes) in &old {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
    // `patch` applies the diff of the files without secrets, and gives what
    // a start writes.
    if !have("patch") {
        return;
    }
    let public_diff: String = text
        .split("--- ")
        .filter(|part| !part.is_empty() && !part.contains("secret.conf"))
        .map(|part| format!("--- {part}"))
        .collect();
    let patched = dir.path().join("patched");
    std::fs::create_dir_all(&patched).unwrap();
    for (name, bytes) in &old {
        std::fs::write(patched.join(name), bytes).unwrap();
    }
    // The paths in the diff are absolute: patch takes the file names.
    let relative = public_diff.replace(&format!("{}/", out.display()), "");
    let diff_file = dir.path().join("changes.diff");
    std::fs::write(&diff_file, &relative).unwrap();
    let patched_out = common::run_for(
        Command::new("patch")
            .args(["-p0", "--batch", "-d"])
            .arg(&patched)
            .arg("-i")
            .arg(&diff_file),
        common::COMMAND_TIMEOUT,
    );
    assert!(
        patched_out.status.success(),
        "patch failed on:\n{relative}\n{}",
        patched_out.err()
    );
    run(&["--", "true"], &next).assert_code(0);
    for name in ["app.ini", "public.conf"] {
        assert_eq!(
            std::fs::read(patched.join(name)).unwrap(),
            std::fs::read(out.join(name)).unwrap(),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------
// Docker

/// Builds an image FROM the examples' base with `files` (name, content)
/// and the static envinit in its context; removed when the guard drops.
fn image(name: &str, dockerfile: &str, files: &[(&str, &str)]) -> Option<ImageGuard> {
    let (Some(base), Some(envinit)) = (engines::base_image(), engines::envinit_binary()) else {
        return None;
    };
    let context = TempDir::new(name);
    std::fs::copy(&envinit, context.path().join("envinit")).unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    for (file, content) in files {
        std::fs::write(context.path().join(file), content).unwrap();
    }
    let tag = engines::tag(&format!("envinit-ex-{name}"));
    docker(&[
        "build",
        "-q",
        "--build-arg",
        &format!("BASE={base}"),
        "-t",
        &tag,
        context.path().to_str().unwrap(),
    ]);
    Some(ImageGuard(tag))
}

/// Removes an image when the test ends, however it ends.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        engines::quietly("docker", &["rmi", "-f", &self.0]);
    }
}

/// The address `docker port` gives for the container's port 80.
fn published(name: &str) -> String {
    docker(&["port", name, "80"])
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

const NGINX_DOCKERFILE: &str = "\
ARG BASE
FROM ${BASE}
COPY envinit /sbin/envinit
COPY nginx.conf.tmpl /etc/envinit/nginx.conf.tmpl
ENV ENVINIT_LOG=info
ENTRYPOINT [\"/sbin/envinit\", \"--secrets-dir\", \"/etc/secret\", \
  \"-t\", \"/etc/envinit/nginx.conf.tmpl:/etc/nginx/nginx.conf\", \"--rewrite\", \"TERM:QUIT\", \"--\"]
CMD [\"nginx\", \"-g\", \"daemon off;\"]
";

const NGINX_IMAGE_TEMPLATE: &str = "\
worker_processes 2;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 512; }
http {
    access_log off;
    server {
        listen 80;
        location / { default_type text/plain; return 200 \"token={{ secrets.token }}\"; }
    }
}
";

/// nginx in a container, its secret in a bind-mounted Kubernetes-style
/// volume: `reload` rotates it, nginx must serve the new value with the
/// same master and no request of the load may fail.
fn docker_nginx_reload(extra_env: &[&str], reload: impl FnOnce(&Path, &Container)) {
    let _engine = engines::engine_lock();
    let Some(image) = image(
        "reload-nginx",
        NGINX_DOCKERFILE,
        &[("nginx.conf.tmpl", NGINX_IMAGE_TEMPLATE)],
    ) else {
        return;
    };
    let volume = TempDir::new("reload-volume");
    k8s_volume(volume.path(), &[("token", "old-secret\n")]);
    let name = engines::name("envinit-ex-reload");
    let mount = format!("{}:/etc/secret:ro", volume.path().display());
    let mut args = vec!["-p", "127.0.0.1::80", "-v", &mount];
    for e in extra_env {
        args.extend(["-e", e]);
    }
    args.push(&image.0);
    let c = Container::start(&name, &args);
    let address = published(&name);
    wait_until("nginx to answer", Duration::from_secs(60), || {
        (get(&address).ok()?.1 == "token=old-secret").then_some(())
    });
    let master = c.exec(&["cat", "/run/nginx.pid"]);
    let load = Load::start(&address, 8);
    load.wait_more(200);
    reload(volume.path(), &c);
    wait_until("nginx to serve the new token", EVENT_TIMEOUT, || {
        (get(&address).ok()?.1 == "token=new-secret").then_some(())
    });
    load.wait_more(500);
    let tally = load.finish();
    assert!(
        tally.bad.is_empty(),
        "{} of {} requests failed: {:?}",
        tally.bad.len(),
        tally.ok,
        &tally.bad[..tally.bad.len().min(5)]
    );
    assert_eq!(
        c.exec(&["cat", "/run/nginx.pid"]),
        master,
        "the same master"
    );
    let logs = c.logs();
    assert!(logs.contains("reconfiguring"), "{logs}");
    assert!(
        !logs.contains("old-secret") && !logs.contains("new-secret"),
        "{logs}"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("config reloaded: files changed"))
        .unwrap_or_else(|| panic!("no reload line:\n{logs}"));
    common::note(&format!(
        "docker nginx: {} requests during the reload, none failed; {line}",
        tally.ok
    ));
    let (code, _) = c.stop(10);
    assert_eq!(code, 0, "{}", c.logs());
}

#[test]
fn docker_nginx_picks_up_a_rotated_secret_after_docker_kill_hup() {
    if !engines::have_docker() {
        return;
    }
    docker_nginx_reload(&[], |volume, c| {
        k8s_volume(volume, &[("token", "new-secret\n")]);
        c.kill("HUP");
    });
}

#[test]
fn docker_a_failed_reload_keeps_nginx_serving_and_the_container_running() {
    if !engines::have_docker() {
        return;
    }
    let _engine = engines::engine_lock();
    let Some(image) = image(
        "reload-nginx-fail",
        NGINX_DOCKERFILE,
        &[("nginx.conf.tmpl", NGINX_IMAGE_TEMPLATE)],
    ) else {
        return;
    };
    let volume = TempDir::new("reload-volume-fail");
    k8s_volume(volume.path(), &[("token", "kept\n")]);
    let name = engines::name("envinit-ex-reload-fail");
    let mount = format!("{}:/etc/secret:ro", volume.path().display());
    let c = Container::start(&name, &["-p", "127.0.0.1::80", "-v", &mount, &image.0]);
    let address = published(&name);
    wait_until("nginx to answer", Duration::from_secs(60), || {
        (get(&address).ok()?.1 == "token=kept").then_some(())
    });
    let before = c.exec(&["cat", "/etc/nginx/nginx.conf"]);
    // The secret removed from the volume (a key deleted from the Secret).
    k8s_volume(volume.path(), &[("other", "x\n")]);
    std::fs::remove_file(volume.path().join("token")).unwrap();
    c.kill("HUP");
    let logs = c.wait_log("reload failed", EVENT_TIMEOUT);
    assert_eq!(errors(&logs).len(), 1, "{logs}");
    assert!(
        errors(&logs)[0].contains("/etc/envinit/nginx.conf.tmpl:9:"),
        "FILE:LINE:COL: {logs}"
    );
    assert!(
        !logs.contains("reconfiguring"),
        "nginx was signalled: {logs}"
    );
    assert!(c.running());
    assert_eq!(c.exec(&["cat", "/etc/nginx/nginx.conf"]), before);
    assert_eq!(
        c.exec(&["sh", "-c", "ls -a /etc/nginx | grep -c envinit || true"])
            .trim(),
        "0"
    );
    assert_eq!(get(&address).unwrap(), (200, "token=kept".into()));
    let (code, _) = c.stop(10);
    assert_eq!(code, 0, "{}", c.logs());
}

#[test]
fn docker_nginx_picks_up_a_data_swap_with_watch() {
    if !engines::have_docker() {
        return;
    }
    docker_nginx_reload(&["ENVINIT_WATCH=1"], |volume, _| {
        k8s_volume(volume, &[("token", "new-secret\n")]);
    });
}

#[test]
fn docker_java_rederives_xmx_after_docker_update_and_a_hup() {
    if !engines::have_docker() {
        return;
    }
    let _engine = engines::engine_lock();
    let Some(image) =
        engines::build_example("docker", "java", "Dockerfile", "envinit-ex-java", &[])
    else {
        return;
    };
    let name = engines::name("envinit-ex-java-reload");
    let c = Container::start(
        &name,
        &["--memory", "256m", "-e", "ENVINIT_LOG=info", &image],
    );
    c.wait_log("ready", Duration::from_secs(120));
    assert!(
        c.exec(&["cat", "/etc/app/jvm.options"])
            .contains("-Xmx192m")
    );
    let java_pid =
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm)\" = java ] && echo ${p#/proc/}; done; true";
    let java = c.exec(&["sh", "-c", java_pid]);
    docker(&["update", "--memory", "128m", "--memory-swap", "256m", &name]);
    // What a reload would change, before it does (exit 1: something).
    let out = common::run_for(
        Command::new("docker").args([
            "exec",
            &name,
            "/sbin/envinit",
            "--check",
            "--diff",
            "-t",
            "/etc/envinit/jvm.options.tmpl:/etc/app/jvm.options",
        ]),
        common::COMMAND_TIMEOUT,
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{diff}");
    assert!(diff.contains("-Xmx192m\n+-Xmx96m\n"), "{diff}");
    c.kill("HUP");
    let logs = c.wait_log("restart to apply", EVENT_TIMEOUT);
    assert!(logs.contains("jvm.options now asks for -Xmx96m"), "{logs}");
    assert!(c.exec(&["cat", "/etc/app/jvm.options"]).contains("-Xmx96m"));
    assert_eq!(c.exec(&["sh", "-c", java_pid]), java, "the same JVM");
    assert!(c.running());
    if let Some(line) = logs.lines().find(|l| l.contains("config reloaded")) {
        common::note(&format!("docker java: {line}"));
    }
    let (code, _) = c.stop(10);
    assert_eq!(code, 0, "{}", c.logs());
}

#[test]
fn docker_php_fpm_reloads_on_usr2_with_max_children_from_memory_and_diff_masks_its_secret() {
    if !engines::have_docker() {
        return;
    }
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
    let secrets = TempDir::new("reload-php-secret");
    std::fs::write(secrets.path().join("db_password"), "hunter2\n").unwrap();
    let name = engines::name("envinit-ex-php-reload");
    let mount = format!("{}:/run/secrets", secrets.path().display());
    let c = Container::start(
        &name,
        &[
            "--memory",
            "512m",
            "-v",
            &mount,
            "-e",
            "DB_PASSWORD_FILE=/run/secrets/db_password",
            "-e",
            "ENVINIT_LOG=info",
            &image,
        ],
    );
    c.wait_log("ready to handle connections", Duration::from_secs(60));
    let pool = "/etc/php/8.2/fpm/pool.d/www.conf";
    assert!(c.exec(&["cat", pool]).contains("pm.max_children = 8"));
    let master_pid = "for p in /proc/[0-9]*; do grep -q '^php-fpm: master' $p/cmdline && echo ${p#/proc/}; done; true";
    let master = c.exec(&["sh", "-c", master_pid]);
    docker(&["update", "--memory", "256m", &name]);
    std::fs::write(secrets.path().join("db_password"), "correct horse\n").unwrap();
    // `docker exec` runs envinit with the container's environment; the
    // options are the ENTRYPOINT's.
    let out = common::run_for(
        Command::new("docker").args([
            "exec",
            &name,
            "/sbin/envinit",
            "--check",
            "--diff",
            "--template",
            "/etc/envinit/php:/etc/php/8.2/fpm",
            "--template",
            "/etc/envinit/app:/etc/app",
            "--ini",
            "PHP_INI_:/etc/php/8.2/fpm/conf.d/99-env.ini",
        ]),
        common::COMMAND_TIMEOUT,
    );
    let diff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{diff}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        diff.contains("-pm.max_children = 8\n+pm.max_children = 4\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-  \"db_password\": ***\n+  \"db_password\": ***\n"),
        "{diff}"
    );
    assert!(
        !diff.contains("hunter2") && !diff.contains("correct horse"),
        "{diff}"
    );
    common::note(&format!(
        "docker exec envinit --check --diff after docker update:\n{diff}"
    ));
    c.kill("HUP");
    let logs = c.wait_log("Reloading in progress", EVENT_TIMEOUT);
    assert!(c.exec(&["cat", pool]).contains("pm.max_children = 4"));
    c.wait_log("ready to handle connections", EVENT_TIMEOUT);
    assert_eq!(c.exec(&["sh", "-c", master_pid]), master, "the same master");
    assert!(!logs.contains("hunter2") && !logs.contains("correct horse"));
    if let Some(line) = logs.lines().find(|l| l.contains("config reloaded")) {
        common::note(&format!("docker php-fpm: {line}"));
    }
    let (code, _) = c.stop(10);
    assert_eq!(code, 0, "{}", c.logs());
}

// ---------------------------------------------------------------------------
// What the app could plant where a reload or --check --diff reads as root

#[test]
fn a_dest_the_app_replaced_with_a_link_to_a_root_file_is_not_read_by_a_reload_or_a_diff() {
    if !have_unshare() {
        return;
    }
    // The child runs as the app's user: the system's python3 and a copy of
    // the script it may read.
    if !have("/usr/bin/python3") {
        return;
    }
    let dir = TempDir::new("reload-attack");
    std::fs::copy(common::child_py(), dir.path().join("child.py")).unwrap();
    let child: Vec<std::ffi::OsString> = [
        "/usr/bin/python3",
        &dir.join("child.py"),
        "report",
        "--exit-on",
        "15",
    ]
    .iter()
    .map(Into::into)
    .collect();
    // The app's user (65534) owns the directory its config is rendered
    // into (so it may replace the file there); envinit runs as root.
    let secrets = dir.path().join("secrets");
    k8s_volume(&secrets, &[("token", "one\n")]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    std::fs::write(
        dir.path().join("app.conf.tmpl"),
        "token = {{ secrets.token }}\n",
    )
    .unwrap();
    let dest = out.join("app.conf");
    let template = format!("{}:{}", dir.join("app.conf.tmpl"), dest.display());
    let secrets_dir = secrets.to_str().unwrap();
    let mut args: Vec<std::ffi::OsString> = [
        "--user",
        "65534:65534",
        "--secrets-dir",
        secrets_dir,
        "-t",
        &template,
        "--",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.extend(child);
    let running = Spec::pid1(args)
        .env("ENVINIT_LOG", "info")
        .timeout(Duration::from_secs(60))
        .start();
    running.wait_line("ready");
    let owner = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (
            std::os::unix::fs::MetadataExt::uid(&m),
            std::os::unix::fs::MetadataExt::gid(&m),
        )
    };
    assert_eq!(owner(&dest), (65534, 65534));
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let diff = |name: &str| {
        Spec::direct([
            "--check",
            "--diff",
            "--secrets-dir",
            secrets_dir,
            "-t",
            &format!("{}:{}", dir.join("app.conf.tmpl"), out.join(name).display()),
        ])
        .run()
    };
    type Link = fn(&Path, &Path) -> std::io::Result<()>;
    let links: [(&str, Link); 2] = [
        ("symlink", |to, at| symlink(to, at)),
        ("hard link", |to, at| std::fs::hard_link(to, at)),
    ];
    for (how, link) in links {
        // The app (as root can, whatever fs.protected_hardlinks says)
        // replaces its config with a link to /etc/shadow.
        std::fs::remove_file(&dest).unwrap();
        link(Path::new("/etc/shadow"), &dest).unwrap();
        let d = diff("app.conf");
        d.assert_code(1);
        let text = d.out();
        assert!(
            text.starts_with(&format!("--- {} (", dest.display())),
            "{how}: {text}"
        );
        assert!(
            text.contains("not followed") || text.contains("unsafe path"),
            "{how}: {text}"
        );
        for line in shadow.lines().filter(|l| !l.is_empty()) {
            assert!(!text.contains(line), "{how}: the diff printed /etc/shadow");
        }
        // A reload replaces the link by the file (it is not followed, not
        // read, and /etc/shadow is untouched), owned by the app's user.
        let shadow_before = std::fs::read("/etc/shadow").unwrap();
        k8s_volume(&secrets, &[("token", &format!("{how}\n"))]);
        running.signal(sig::HUP);
        running.wait_line(&format!("sig {} from 1", sig::HUP));
        running.stdout.wait_for(EVENT_TIMEOUT, |t| {
            (t.matches("sig 1 from 1").count() >= if how == "symlink" { 1 } else { 2 })
                .then_some(())
        });
        assert_eq!(std::fs::read("/etc/shadow").unwrap(), shadow_before);
        let meta = std::fs::symlink_metadata(&dest).unwrap();
        assert!(
            meta.is_file() && std::os::unix::fs::MetadataExt::nlink(&meta) == 1,
            "{how}"
        );
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            format!("token = {how}\n")
        );
        assert_eq!(owner(&dest), (65534, 65534), "{how}");
    }
    running.signal(sig::TERM);
    running.wait().assert_code(0);
}
