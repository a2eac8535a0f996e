//! Several processes from a Procfile (`--procfile`, issue 15), end to end:
//! envinit runs as the real PID 1 of a new pid namespace with real
//! processes (sh, python3, coreutils), one test per rule of
//! docs/supervision.md "Several processes": start order, dependency waits,
//! the first end stopping the rest with its code, `--restart` and its
//! backoff, stops during a wait and during a backoff, the reverse-order
//! stop with per-process stop signals, signal routing, per-process users,
//! Procfile errors, commands that cannot run, prefixed output under load,
//! no zombies. Tests wait for events (lines, files, /proc), never sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{
    EVENT_TIMEOUT, Running, Spec, TempDir, children, envinit_comm, has_line, have_unshare,
    py_child, sig, stat, wait_until,
};

/// An upper bound for "promptly": far below the grace periods used, far
/// above scheduling noise on a loaded 2-core machine.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Writes `text` as `dir/Procfile`; its path.
fn procfile(dir: &TempDir, text: &str) -> String {
    let path = dir.join("Procfile");
    std::fs::write(&path, text).unwrap();
    path
}

/// `sh -c` that, once its trap is set, says `NAME up` and touches
/// `DIR/NAME.up`; then on SIGNAL says `NAME got SIGNAL`, waits `linger` (a
/// `sleep` argument) and exits 0. The shell sleeps in short steps so the
/// trap runs at once.
fn trapper(dir: &TempDir, name: &str, signal: &str, linger: &str) -> String {
    let up = dir.join(&format!("{name}.up"));
    format!(
        "sh -c 'trap \"echo {name} got {signal}; sleep {linger}; exit 0\" {signal}; echo {name} up; touch {up}; while :; do sleep 0.05; done'"
    )
}

/// `--proc-wait NAME=file://DIR/AFTER.up`: NAME starts once AFTER's trap
/// is set.
fn after(dir: &TempDir, name: &str, after: &str) -> [String; 2] {
    [
        "--proc-wait".into(),
        format!("{name}=file://{}", dir.join(&format!("{after}.up"))),
    ]
}

/// Waits until stderr holds a line containing all of `parts`.
fn wait_err(run: &Running, what: &str, parts: &[&str]) {
    let found = run.stderr.wait_for(EVENT_TIMEOUT, |t| {
        t.lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
            .then_some(())
    });
    assert!(
        found.is_some(),
        "no {what} on stderr\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout.text(),
        run.stderr.text()
    );
}

/// The lines of stdout that come from process `name` (`--proc-prefix`),
/// without the prefix.
fn of(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (who, line) = l.split_once(" | ")?;
            (who.trim_end() == name).then(|| line.to_string())
        })
        .collect()
}

/// The index of the first line of `text` equal to `line`.
fn at(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in\n{text}"))
}

#[test]
fn processes_start_in_file_order_each_once_the_one_before_has_started() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("order");
    let go = dir.join("go");
    let file = procfile(
        &dir,
        "a: sh -c 'echo a up; exec sleep 60'\n\
         # b waits for the file go; c is queued behind it\n\
         b: sh -c 'echo b up; exec sleep 60'\n\
         c: sh -c 'echo c up; exec sleep 60'\n",
    );
    let run = Spec::pid1([
        "--procfile",
        &file,
        "--proc-wait",
        &format!("b=file://{go}"),
    ])
    .start();
    run.wait_line("a up");
    // b is forked and waits (an envinit fork, not yet sh); c is not started.
    let init = run.init_pid();
    let comm = envinit_comm();
    let waiter = wait_until("b's waiting fork", EVENT_TIMEOUT, || {
        children(init)
            .into_iter()
            .find(|&p| stat(p).is_some_and(|s| s.comm == comm))
    });
    assert_eq!(children(init).len(), 2, "a and b's waiter only");
    let sleeper = children(init).into_iter().find(|&p| p != waiter).unwrap();
    assert!(waiter > sleeper, "b was forked after a");
    assert!(!has_line(&run.stdout.text(), "c up"));
    std::fs::write(&go, "").unwrap();
    run.wait_line("b up");
    run.wait_line("c up");
    assert_eq!(children(init).len(), 3);
    run.signal(sig::TERM);
    let out = run.wait();
    // Each died of the stop signal it was sent: a clean stop.
    out.assert_code(0);
    let text = out.out();
    assert!(at(&text, "a up") < at(&text, "b up"), "{}", out.describe());
}

#[test]
fn a_process_waits_for_another_ones_unix_socket() {
    if !have_unshare() {
        return;
    }
    let Some(python) = py_child("report", &[]) else {
        return;
    };
    let python = python[0].to_str().unwrap().to_string();
    let dir = TempDir::new("socket");
    let sock = dir.join("app.sock");
    // The server binds its socket only after a moment, so a client started
    // without the wait would find nothing; the client ends the run with 0.
    let file = procfile(
        &dir,
        &format!(
            "server: {python} -c 'import socket,time; time.sleep(0.5); s=socket.socket(socket.AF_UNIX); s.bind(\"{sock}\"); s.listen(); print(\"listening\", flush=True); time.sleep(60)'\n\
             client: {python} -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"{sock}\"); print(\"connected\", flush=True)'\n"
        ),
    );
    let out = Spec::pid1([
        "--procfile",
        &file,
        "--proc-wait",
        &format!("client=unix://{sock}"),
        "--proc-prefix",
    ])
    .env("ENVINIT_LOG", "info")
    .run();
    out.assert_code(0);
    let text = out.out();
    assert_eq!(of(&text, "client"), ["connected"], "{}", out.describe());
    assert_eq!(of(&text, "server"), ["listening"], "{}", out.describe());
    assert!(
        out.err().contains("ready dependency=unix://"),
        "{}",
        out.describe()
    );
}

#[test]
fn the_first_process_to_end_stops_the_others_with_its_code() {
    if !have_unshare() {
        return;
    }
    for (ending, code) in [
        ("sh -c 'echo b up; exit 7'", 7),
        ("sh -c 'echo b up; kill -USR1 $$'", 128 + sig::USR1),
    ] {
        let dir = TempDir::new("first");
        let file = procfile(
            &dir,
            &format!("a: {}\nb: {ending}\n", trapper(&dir, "a", "TERM", "0")),
        );
        let started = Instant::now();
        let [w, url] = after(&dir, "b", "a");
        let out = Spec::pid1(["--procfile", &file, &w, &url]).run();
        out.assert_code(code);
        assert!(started.elapsed() < PROMPTLY, "{}", out.describe());
        assert!(has_line(&out.out(), "a got TERM"), "{}", out.describe());
        assert!(
            out.err().contains(&format!(
                "process failed: stopping the others process=b code={code}"
            )),
            "{}",
            out.describe()
        );
    }
    // The command after -- is the process main, started last.
    let dir = TempDir::new("first");
    let file = procfile(&dir, &format!("a: {}\n", trapper(&dir, "a", "TERM", "0")));
    let [w, url] = after(&dir, "main", "a");
    let out = Spec::pid1(["--procfile", &file, &w, &url, "--", "sh", "-c", "exit 3"]).run();
    out.assert_code(3);
    assert!(has_line(&out.out(), "a got TERM"), "{}", out.describe());
}

#[test]
fn restart_backs_off_and_says_so_once_per_restart() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("restart");
    let runs = dir.join("runs");
    // flaky fails at once, each run adding a line; main ends the test
    // once flaky has run three times.
    let file = procfile(
        &dir,
        &format!("flaky: sh -c 'date +%s.%N >>{runs}; exit 3'\n"),
    );
    let wait =
        format!("while [ \"$(wc -l <{runs} 2>/dev/null || echo 0)\" -lt 3 ]; do sleep 0.05; done");
    let started = Instant::now();
    let out = Spec::pid1([
        "--procfile",
        &file,
        "--restart",
        "flaky",
        "--",
        "sh",
        "-c",
        &wait,
    ])
    .run();
    out.assert_code(0);
    let times: Vec<f64> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(times.len() >= 3, "{times:?}");
    // 1 s, then 2 s between runs.
    assert!(times[1] - times[0] >= 0.95, "{times:?}");
    assert!(times[2] - times[1] >= 1.95, "{times:?}");
    assert!(started.elapsed() < Duration::from_secs(3) + PROMPTLY);
    let err = out.err();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("restarting")).collect();
    // One per end of flaky: the third is cut short by main's end.
    assert_eq!(
        warnings,
        [
            "envinit: warn: process ended: restarting it (--restart) process=flaky code=3 delay=1s",
            "envinit: warn: process ended: restarting it (--restart) process=flaky code=3 delay=2s",
            "envinit: warn: process ended: restarting it (--restart) process=flaky code=3 delay=4s",
        ][..times.len()],
        "{}",
        out.describe()
    );
}

#[test]
fn a_stop_during_a_dependency_wait_ends_the_wait_and_starts_nothing_more() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("stop-wait");
    let file = procfile(
        &dir,
        &format!(
            "a: {}\nb: sh -c 'echo b up'\nc: sh -c 'echo c up'\n",
            trapper(&dir, "a", "TERM", "0")
        ),
    );
    let never = dir.join("never");
    let run = Spec::pid1([
        "--procfile",
        &file,
        "--proc-wait",
        &format!("b=file://{never}"),
        "--grace",
        "20s",
    ])
    .env("ENVINIT_LOG", "info")
    .start();
    run.wait_line("a up");
    wait_until("b's waiting fork", EVENT_TIMEOUT, || {
        (children(run.init_pid()).len() == 2).then_some(())
    });
    let sent = Instant::now();
    run.signal(sig::TERM);
    let out = run.wait();
    assert!(sent.elapsed() < PROMPTLY, "{}", out.describe());
    // b died of its stop signal while waiting, a ended on its own: clean.
    out.assert_code(0);
    let text = out.out();
    assert!(has_line(&text, "a got TERM"), "{}", out.describe());
    assert!(!has_line(&text, "b up") && !has_line(&text, "c up"));
    assert!(
        out.err()
            .contains("stop signal while waiting for dependencies"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_dependency_not_ready_in_time_ends_its_process_with_69() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("wait-timeout");
    let file = procfile(
        &dir,
        &format!(
            "a: {}\nb: sh -c 'echo b up'\n",
            trapper(&dir, "a", "TERM", "0")
        ),
    );
    let never = dir.join("never");
    let out = Spec::pid1([
        "--procfile",
        &file,
        "--proc-wait",
        &format!("b=file://{never}"),
        "--wait-timeout",
        "1s",
    ])
    .run();
    out.assert_code(69);
    let text = out.out();
    assert!(has_line(&text, "a got TERM"), "{}", out.describe());
    assert!(!has_line(&text, "b up"));
    let err = out.err();
    assert!(
        err.contains(&format!(
            "file://{never} is not ready after 1s: no such file or directory"
        )) && err.contains("dependencies not ready: the app was not started (exit 69) process=b"),
        "{}",
        out.describe()
    );
    assert!(
        err.contains("process failed: stopping the others process=b code=69"),
        "{err}"
    );
}

#[test]
fn a_stop_during_a_restart_backoff_ends_it_without_another_start() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("stop-backoff");
    let runs = dir.join("runs");
    let file = procfile(
        &dir,
        &format!(
            "a: {}\nflaky: sh -c 'echo run >>{runs}; exit 1'\n",
            trapper(&dir, "a", "TERM", "0")
        ),
    );
    let run = Spec::pid1(["--procfile", &file, "--restart", "flaky"]).start();
    run.wait_line("a up");
    // The third end: the next start would come 4 s later.
    wait_err(&run, "the third restart", &["restarting", "delay=4s"]);
    let sent = Instant::now();
    run.signal(sig::TERM);
    let out = run.wait();
    let took = sent.elapsed();
    out.assert_code(0);
    assert!(
        took < Duration::from_secs(4),
        "took {took:?}: {}",
        out.describe()
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 3);
    assert!(has_line(&out.out(), "a got TERM"), "{}", out.describe());
}

#[test]
fn a_stop_stops_in_reverse_order_within_the_grace_with_each_stop_signal() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("reverse");
    // Each takes a moment to stop, so the next one's signal visibly waits
    // for its end.
    let file = procfile(
        &dir,
        &format!(
            "php-fpm: {}\nnginx: {}\ncron: {}\n",
            trapper(&dir, "php-fpm", "QUIT", "0.3"),
            trapper(&dir, "nginx", "QUIT", "0.3"),
            trapper(&dir, "cron", "TERM", "0.3"),
        ),
    );
    for via in ["options", "variables"] {
        let spec = match via {
            "options" => Spec::pid1([
                "--procfile",
                &file,
                "--proc-prefix",
                "--proc-stop-signal",
                "php-fpm=QUIT",
                "--proc-stop-signal",
                "nginx=SIGQUIT",
            ]),
            _ => Spec::pid1(["--procfile", &file, "--proc-prefix"])
                .env("ENVINIT_PROC_STOP_SIGNAL", "php-fpm=QUIT, nginx=3"),
        };
        let spec = spec.env("ENVINIT_GRACE", "8s");
        let run = spec.start();
        run.wait_stdout("all three up", |t| {
            ["php-fpm", "nginx", "cron"]
                .iter()
                .all(|n| of(t, n).contains(&format!("{n} up")))
        });
        let sent = Instant::now();
        run.signal(sig::TERM);
        let out = run.wait();
        out.assert_code(0);
        assert!(sent.elapsed() < PROMPTLY, "{via}: {}", out.describe());
        let text = out.out();
        let got: Vec<&str> = text.lines().filter(|l| l.contains(" got ")).collect();
        assert_eq!(
            got,
            [
                "cron    | cron got TERM",
                "nginx   | nginx got QUIT",
                "php-fpm | php-fpm got QUIT"
            ],
            "{via}: {}",
            out.describe()
        );
        assert!(!out.err().contains("grace period over"));
    }
}

#[test]
fn one_process_ignoring_its_stop_signal_does_not_hold_the_others() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("stubborn");
    // stubborn (stopped first) ignores TERM: a's turn comes at 1/2 of the
    // grace at the latest; stubborn is killed at its end.
    let file = procfile(
        &dir,
        &format!(
            "a: {}\nstubborn: sh -c 'trap \"\" TERM; echo stubborn up; while :; do sleep 0.05; done'\n",
            trapper(&dir, "a", "TERM", "0")
        ),
    );
    let run = Spec::pid1(["--procfile", &file, "--grace", "4s"]).start();
    run.wait_line("stubborn up");
    run.wait_line("a up");
    let sent = Instant::now();
    run.signal(sig::TERM);
    let a_told = run.wait_line("a got TERM") - sent;
    let out = run.wait();
    let took = sent.elapsed();
    assert!(
        a_told >= Duration::from_millis(1900) && a_told < Duration::from_secs(4),
        "a was told after {a_told:?}"
    );
    assert!(took >= Duration::from_millis(3900) && took < Duration::from_secs(4) + PROMPTLY);
    out.assert_code(137);
    assert!(
        out.err().contains("grace period over"),
        "{}",
        out.describe()
    );
}

#[test]
fn signals_go_to_every_process_or_only_where_routed() {
    if !have_unshare() {
        return;
    }
    let Some(report) = py_child("report", &["--exit-on", "15"]) else {
        return;
    };
    let report: Vec<String> = report
        .iter()
        .map(|w| w.to_str().unwrap().to_string())
        .collect();
    let dir = TempDir::new("routing");
    let line = report.join(" ");
    let file = procfile(&dir, &format!("all: {line}\nnone: {line}\nusr1: {line}\n"));
    // The command line's list replaces the variable's.
    let run = Spec::pid1([
        "--procfile",
        &file,
        "--proc-prefix",
        "--proc-signals",
        "none=none",
        "--proc-signals",
        "usr1=SIGUSR1+WINCH+HUP:USR2",
        "--rewrite",
        "USR2:USR1",
    ])
    .env("ENVINIT_PROC_SIGNALS", "all=none")
    .start();
    run.wait_stdout("three ready", |t| {
        ["all", "none", "usr1"]
            .iter()
            .all(|n| of(t, n).contains(&"ready".to_string()))
    });
    run.signal_taken(sig::HUP);
    // Two different signals pending at once arrive lowest first: one at a
    // time.
    run.wait_stdout("usr1's first signal", |t| of(t, "usr1").len() == 2);
    run.signal_taken(sig::USR2);
    run.wait_stdout("usr1's signals", |t| of(t, "usr1").len() == 3);
    run.signal(sig::TERM);
    let out = run.wait();
    out.assert_code(0);
    let text = out.out();
    let from = |s: i32| format!("sig {s} from 1");
    assert_eq!(
        of(&text, "all"),
        ["ready", &from(sig::HUP), &from(sig::USR1), &from(sig::TERM)],
        "{}",
        out.describe()
    );
    assert_eq!(
        of(&text, "none"),
        ["ready", &from(sig::TERM)],
        "stop signals are not routed"
    );
    assert_eq!(
        of(&text, "usr1"),
        [
            "ready",
            &from(sig::USR2),
            &from(sig::USR1),
            &from(sig::TERM)
        ],
        "HUP sent as USR2; USR2 rewritten to USR1, then routed"
    );
}

#[test]
fn each_process_runs_as_its_user_and_root_where_asked() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("users");
    let show = "sh -c 'echo $(id -un):$(id -gn) $HOME; exec sleep 60'";
    let file = procfile(
        &dir,
        &format!("master: {show}\nworker: {show}\nbob: HOME=/custom {show}\n"),
    );
    for (args, env) in [
        (
            vec![
                "--procfile",
                &file,
                "--user",
                "www-data",
                "--proc-user",
                "master=root",
                "--proc-prefix",
            ],
            None,
        ),
        (
            vec!["--procfile", &file, "--proc-prefix"],
            Some(("ENVINIT_USER", "www-data")),
        ),
    ] {
        let mut spec = Spec::pid1(&args).env("HOME", "/root");
        if let Some((k, v)) = env {
            spec = spec.env(k, v).env("ENVINIT_PROC_USER", "master=0:0");
        }
        let run = spec.start();
        run.wait_stdout("three lines", |t| {
            ["master", "worker", "bob"]
                .iter()
                .all(|n| !of(t, n).is_empty())
        });
        run.signal(sig::TERM);
        let out = run.wait();
        out.assert_code(0);
        let text = out.out();
        assert_eq!(
            of(&text, "master"),
            ["root:root /root"],
            "{}",
            out.describe()
        );
        assert_eq!(
            of(&text, "worker"),
            ["www-data:www-data /var/www"],
            "{}",
            out.describe()
        );
        assert_eq!(
            of(&text, "bob"),
            ["www-data:www-data /custom"],
            "{}",
            out.describe()
        );
    }
}

#[test]
fn a_procfile_error_names_file_and_line_exits_78_and_starts_nothing() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("bad");
    let marker = dir.join("ran");
    for (text, line, says) in [
        ("ok: touch MARK\n\nbad line here\n", 3, "not NAME: COMMAND"),
        ("ok: touch MARK\nweb: echo $PORT\n", 2, "not expanded"),
        (
            "ok: touch MARK\nok: touch MARK\n",
            2,
            "used on an earlier line",
        ),
        (
            "ok: touch MARK\nweb: nginx -g 'daemon off;\n",
            2,
            "unterminated quote",
        ),
    ] {
        let file = procfile(&dir, &text.replace("MARK", &marker));
        let out = Spec::pid1(["--procfile", &file, "--", "touch", &marker]).run();
        out.assert_code(78);
        let lines = out.err_lines();
        assert_eq!(lines.len(), 1, "{}", out.describe());
        assert!(
            lines[0].starts_with(&format!("envinit: error: {file}:{line}: "))
                && lines[0].contains(says),
            "{}",
            out.describe()
        );
        assert!(!std::path::Path::new(&marker).exists(), "something started");
    }
    // An option naming no process: 64 on the command line.
    let file = procfile(&dir, "web: true\n");
    let out = Spec::pid1(["--procfile", &file, "--restart", "wbe"]).run();
    out.assert_code(64);
    assert!(
        out.err()
            .contains("--restart: no process is named \"wbe\" (not in the Procfile, not main)"),
        "{}",
        out.describe()
    );
    let out = Spec::pid1(["--procfile", &dir.join("missing")]).run();
    out.assert_code(78);
    assert!(
        out.err()
            .contains("cannot read the Procfile: No such file or directory")
    );
}

/// `--export-file-var` gives every process the secret, unless
/// `--proc-export-file-var` names the processes that get it: then the
/// others have neither the variable nor its `_FILE`.
#[test]
fn exported_secrets_reach_only_the_processes_named() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("exports");
    let secret = dir.join("db_password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let show = "sh -c 'echo [${DB_PASSWORD-unset}][${DB_PASSWORD_FILE-unset}]; exec sleep 60'";
    let file = procfile(&dir, &format!("app: {show}\ncron: {show}\n"));
    let base = [
        "--procfile",
        &file,
        "--proc-prefix",
        "--export-file-var",
        "DB_PASSWORD",
    ];
    for (extra, app, cron) in [
        (None, "[s3cret][unset]", "[s3cret][unset]"),
        (Some("app=DB_PASSWORD"), "[s3cret][unset]", "[unset][unset]"),
    ] {
        let mut args = base.to_vec();
        args.extend(extra.iter().flat_map(|e| ["--proc-export-file-var", *e]));
        let run = Spec::pid1(&args).env("DB_PASSWORD_FILE", &secret).start();
        run.wait_stdout("two lines", |t| {
            !of(t, "app").is_empty() && !of(t, "cron").is_empty()
        });
        run.signal(sig::TERM);
        let out = run.wait();
        out.assert_code(0);
        assert_eq!(of(&out.out(), "app"), [app], "{}", out.describe());
        assert_eq!(of(&out.out(), "cron"), [cron], "{}", out.describe());
    }
    // A variable --export-file-var does not name: one line, nothing started.
    let out = Spec::pid1([
        "--procfile",
        &file,
        "--proc-user",
        "app=root",
        "--proc-export-file-var",
        "app=DB_PASSWORD",
    ])
    .env("DB_PASSWORD_FILE", &secret)
    .run();
    out.assert_code(64);
    assert!(
        out.err().contains(
            "--proc-export-file-var: DB_PASSWORD is not exported: add --export-file-var DB_PASSWORD"
        ),
        "{}",
        out.describe()
    );
    assert!(out.out().is_empty(), "{}", out.describe());
}

/// `--check` reads the Procfile too: a bad line, an option naming no
/// process and an unknown `--proc-user` are found without starting
/// anything, together with the templates' problems; a good one passes.
#[test]
fn check_reads_the_procfile_and_starts_nothing() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("check");
    let marker = dir.join("ran");
    let good = procfile(&dir, &format!("web: touch {marker}\n"));
    let out = Spec::pid1(["--check", "--procfile", &good]).run();
    out.assert_code(0);
    assert!(out.err().is_empty(), "{}", out.describe());
    let bad = dir.join("Procfile.bad");
    std::fs::write(&bad, format!("web: touch {marker}\nbad line here\n")).unwrap();
    let tmpl = dir.join("app.conf.tmpl");
    std::fs::write(&tmpl, "x = {{ ENVINIT_TEST_UNSET_X }}\n").unwrap();
    let template = format!("{tmpl}:{}", dir.join("app.conf"));
    let out = Spec::pid1(["--check", "--procfile", &bad, "-t", &template]).run();
    out.assert_code(78);
    let lines = out.err_lines();
    assert!(
        lines[0].starts_with(&format!("envinit: error: {bad}:2: "))
            && lines[0].contains("not NAME: COMMAND")
            && lines
                .iter()
                .any(|l| l.contains("ENVINIT_TEST_UNSET_X is not set")),
        "{}",
        out.describe()
    );
    for (option, says) in [
        (["--restart", "wbe"], "no process is named \"wbe\""),
        (
            ["--proc-user", "web=no-such-user-here"],
            "no user \"no-such-user-here\"",
        ),
    ] {
        let out = Spec::pid1(["--check", "--procfile", &good, option[0], option[1]]).run();
        assert!(matches!(out.code, Some(64 | 78)), "{}", out.describe());
        assert!(out.err().contains(says), "{}", out.describe());
    }
    assert!(!std::path::Path::new(&marker).exists(), "something started");
}

#[test]
fn a_process_that_cannot_be_executed_ends_everything_with_127_or_126() {
    if !have_unshare() {
        return;
    }
    let scripts = TempDir::new("noexec");
    let script = scripts.join("script");
    std::fs::write(&script, "not a program\n").unwrap();
    for (command, code) in [("/nonexistent/envinit-x", 127), (script.as_str(), 126)] {
        let dir = TempDir::new("noexec");
        let file = procfile(
            &dir,
            &format!("a: {}\nb: {command} arg\n", trapper(&dir, "a", "TERM", "0")),
        );
        // Even under --restart: it would never work.
        let [w, url] = after(&dir, "b", "a");
        let out = Spec::pid1(["--procfile", &file, "--restart", "b", &w, &url]).run();
        out.assert_code(code);
        assert!(has_line(&out.out(), "a got TERM"), "{}", out.describe());
        let err = out.err();
        assert_eq!(
            err.lines().filter(|l| l.contains(command)).count(),
            1,
            "{}",
            out.describe()
        );
        assert!(err.contains(&format!("cannot run \"{command}\"")), "{err}");
        assert!(!err.contains("restarting"), "{err}");
    }
}

#[test]
fn prefixed_output_is_whole_lines_under_load() {
    if !have_unshare() {
        return;
    }
    let Some(python) = py_child("report", &[]) else {
        return;
    };
    let python = python[0].to_str().unwrap().to_string();
    let dir = TempDir::new("load");
    // Three writers at once, to stdout and stderr, lines of up to 6000
    // bytes (more than a pipe writes atomically) written in pieces, then a
    // last line without a newline; each then says it is done and waits.
    let script = |name: &str| {
        let done = dir.join(&format!("{name}.done"));
        format!(
            "import os, time\n\
             for i in range(3000):\n\
             \x20 line = ('{name} %d ' % i) + 'x' * (i * 7 % 6000) + '\\n'\n\
             \x20 fd = 2 if i % 3 == 0 else 1\n\
             \x20 for k in range(0, len(line), 1000): os.write(fd, line[k:k + 1000].encode())\n\
             os.write(1, b'{name} end')\n\
             open('{done}', 'w').close()\n\
             time.sleep(60)\n"
        )
    };
    let mut text = String::new();
    for name in ["one", "two", "three"] {
        let path = dir.join(&format!("{name}.py"));
        std::fs::write(&path, script(name)).unwrap();
        text += &format!("{name}: {python} {path}\n");
    }
    let file = procfile(&dir, &text);
    let run = Spec::pid1(["--procfile", &file, "--proc-prefix"])
        .timeout(Duration::from_secs(60))
        .start();
    wait_until("the three writers done", Duration::from_secs(40), || {
        ["one", "two", "three"]
            .iter()
            .all(|n| std::path::Path::new(&dir.join(&format!("{n}.done"))).exists())
            .then_some(())
    });
    run.signal(sig::TERM);
    let out = run.wait();
    out.assert_code(0);
    let (stdout, stderr) = (out.out(), out.err());
    for name in ["one", "two", "three"] {
        let (mut want_out, mut want_err) = (Vec::new(), Vec::new());
        for i in 0..3000 {
            let line = format!("{name} {i} {}", "x".repeat(i * 7 % 6000));
            match i % 3 {
                0 => want_err.push(line),
                _ => want_out.push(line),
            }
        }
        // The last line, without a newline, comes at the end with one.
        want_out.push(format!("{name} end"));
        assert!(of(&stdout, name) == want_out, "{name}: stdout differs");
        assert!(of(&stderr, name) == want_err, "{name}: stderr differs");
    }
    // Only whole prefixed lines: none interleaved mid-line.
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            ["one   | ", "two   | ", "three | "]
                .iter()
                .any(|p| line.starts_with(p)),
            "{line:.80}"
        );
    }
}

#[test]
fn no_zombies_are_left_while_processes_run() {
    if !have_unshare() {
        return;
    }
    let Some(zombies) = py_child("zombies", &["300"]) else {
        return;
    };
    let zombies: Vec<String> = zombies
        .iter()
        .map(|w| w.to_str().unwrap().to_string())
        .collect();
    let dir = TempDir::new("zombies");
    let file = procfile(
        &dir,
        &format!(
            "a: {}\nb: sh -c 'for i in 1 2 3 4 5; do sh -c \"sleep 0 &\"; done; exec sleep 60'\nmaker: {}\n",
            trapper(&dir, "a", "TERM", "0"),
            zombies.join(" ")
        ),
    );
    let out = Spec::pid1(["--procfile", &file]).run();
    // maker ends first, with 0 only if no zombie of envinit was left.
    out.assert_code(0);
    assert!(
        has_line(&out.out(), "orphans 300 zombies 0"),
        "{}",
        out.describe()
    );
}
