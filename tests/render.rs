//! Integration tests of rendering: the built binary renders real configs
//! (the templates in examples/templates) and the real programs read them
//! back: php, nginx, java, my_print_defaults. A test whose program is
//! missing prints why it skips, except under CI=true, where it fails.
//! Every command runs under a timeout; nothing sleeps.

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Finished, Spec};

use envinit::container::Facts;
use envinit::render::{self, Values};
use envinit::render::{PathPair, RenderSettings};

const TIMEOUT: Duration = Duration::from_secs(120);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templates")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("envinit-it-render-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// True when `program` is on PATH. Otherwise the test skips, with a reason,
/// or fails under CI=true (a silent skip in CI would hide a broken setup).
fn have(program: &str) -> bool {
    common::have_program(program, "install it in .ci/run")
}

/// Runs `cmd` to completion, failing the test after [`TIMEOUT`].
fn run(mut cmd: Command) -> Finished {
    common::run_for(&mut cmd, TIMEOUT)
}

/// envinit with a clean environment: PATH plus `env`.
fn envinit(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(common::envinit());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn pair(src: &Path, dest: &Path) -> String {
    format!("{}:{}", src.display(), dest.display())
}

#[test]
fn php_reads_the_rendered_php_ini() {
    if !have("php") {
        return;
    }
    let dir = tempdir("php");
    let dest = dir.join("php.ini");
    let out = run(envinit(
        &[
            "-t",
            &pair(&examples().join("php.ini.tmpl"), &dest),
            "--",
            "php",
            "-c",
            dest.to_str().unwrap(),
            "-r",
            r#"echo ini_get("memory_limit"), " ", ini_get("error_reporting"), " ", ini_get("date.timezone"), " ", ini_get("display_errors");"#,
        ],
        &[
            ("PHP_MEMORY_LIMIT", "1G"),
            ("TZ", "Europe/Paris"),
            ("PHP_DISPLAY_ERRORS", "off"),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1G 22527 Europe/Paris ");
}

#[test]
fn php_and_my_print_defaults_read_ini_targets() {
    let dir = tempdir("ini");
    let php_ini = dir.join("zz-env.ini");
    let my_cnf = dir.join("my.cnf");
    let env = [
        ("PHP_INI_memory_limit", "512M"),
        ("PHP_INI_error_reporting", "E_ALL & ~E_NOTICE"),
        ("PHP_INI_session.save_path", "tcp://redis:6379?auth=p\"w;x"),
        ("MYSQL_CNF_mysqld__innodb_buffer_pool_size", "1G"),
        ("MYSQL_CNF_mysqld__skip-name-resolve", ""),
        ("MYSQL_CNF_mysqld__init_connect", "SET NAMES utf8mb4"),
        ("MYSQL_CNF_client__password", "se\"cr\\et #1"),
    ];
    let ini_args = |tail: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--ini".to_string(),
            format!("PHP_INI_:{}", php_ini.display()),
            "--ini".to_string(),
            format!("MYSQL_CNF_:{}", my_cnf.display()),
            "--".to_string(),
        ];
        args.extend(tail.iter().map(|s| s.to_string()));
        args
    };
    if have("php") {
        let args = ini_args(&[
            "php",
            "-c",
            php_ini.to_str().unwrap(),
            "-r",
            r#"echo ini_get("memory_limit"), "|", ini_get("error_reporting"), "|", ini_get("session.save_path");"#,
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(envinit(&args, &env));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "512M|32759|tcp://redis:6379?auth=p\"w;x");
    }
    if have("my_print_defaults") {
        let file = format!("--defaults-file={}", my_cnf.display());
        let args = ini_args(&["my_print_defaults", &file, "mysqld", "client"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(envinit(&args, &env));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            "--password=se\"cr\\et #1\n--init_connect=SET NAMES utf8mb4\n--innodb_buffer_pool_size=1G\n--skip-name-resolve=\n"
        );
    }
}

#[test]
fn nginx_accepts_the_rendered_nginx_conf() {
    if !have("nginx") {
        return;
    }
    let dir = tempdir("nginx");
    let dest = dir.join("nginx.conf");
    let prefix = format!("{}/", dir.display());
    let pid = dir.join("nginx.pid");
    for upstreams in ["", "127.0.0.1:9000, 127.0.0.2:9000"] {
        let out = run(envinit(
            &[
                "-t",
                &pair(&examples().join("nginx.conf.tmpl"), &dest),
                "--",
                "nginx",
                "-t",
                "-q",
                "-p",
                &prefix,
                "-e",
                "/dev/stderr",
                "-c",
                dest.to_str().unwrap(),
            ],
            &[
                ("NGINX_PID_FILE", pid.to_str().unwrap()),
                ("NGINX_UPSTREAMS", upstreams),
            ],
        ));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let conf = fs::read_to_string(&dest).unwrap();
        // envinit ran in this test's cgroup, so it saw the same facts.
        let cpus = Facts::detect().unwrap().cpus;
        assert!(
            conf.contains(&format!("worker_processes {cpus};\n")),
            "{conf}"
        );
        assert!(conf.contains(&format!("'{{\"status\":\"up\",\"workers\":{cpus}}}'")));
        assert_eq!(
            conf.contains("server 127.0.0.2:9000;"),
            !upstreams.is_empty()
        );
    }
}

fn java_flags(options: &Path) -> String {
    let mut cmd = Command::new("java");
    cmd.arg(format!("@{}", options.display()))
        .args(["-XX:+PrintFlagsFinal", "-version"]);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn flag(flags: &str, name: &str) -> String {
    flags
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("{name} not in java's flags"))
        .to_string()
}

#[test]
fn java_applies_the_rendered_options() {
    if !have("java") {
        return;
    }
    let dir = tempdir("java");
    // With a 1 GiB limit and 2 CPUs (facts given to the library): the heap
    // is 75% of the limit.
    let dest = dir.join("jvm.options");
    let settings = RenderSettings {
        templates: vec![PathPair {
            src: examples().join("jvm.options.tmpl"),
            dest: dest.clone(),
        }],
        ..RenderSettings::default()
    };
    let values = Values::new(
        [(
            OsString::from("JAVA_PROPERTIES"),
            OsString::from("app.mode=test"),
        )],
        dir.join("secrets"),
    )
    .with_container(|| Facts {
        memory_bytes: 1 << 30,
        memory_limited: true,
        cpus: 2,
    });
    render::run_with(&settings, &values).unwrap();
    let flags = java_flags(&dest);
    assert_eq!(flag(&flags, "MaxHeapSize"), (768u64 << 20).to_string());
    assert_eq!(flag(&flags, "ActiveProcessorCount"), "2");

    // Through the binary, with this machine's real facts.
    let out = run(envinit(
        &[
            "--check",
            "-t",
            &pair(&examples().join("jvm.options.tmpl"), &dest),
        ],
        &[],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(envinit(
        &[
            "-t",
            &pair(&examples().join("jvm.options.tmpl"), &dest),
            "true",
        ],
        &[("JAVA_MAX_RAM_PERCENTAGE", "50.0")],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let facts = Facts::detect().unwrap();
    let flags = java_flags(&dest);
    if facts.memory_limited {
        let mib = facts.memory_bytes / (1 << 20) * 75 / 100;
        assert!(
            fs::read_to_string(&dest)
                .unwrap()
                .contains(&format!("-Xmx{mib}m\n"))
        );
    } else {
        assert_eq!(flag(&flags, "MaxRAMPercentage"), "50.000000");
    }
    assert_eq!(flag(&flags, "ActiveProcessorCount"), facts.cpus.to_string());
}

#[test]
fn bad_templates_exit_78_report_everything_and_change_nothing() {
    let dir = tempdir("errors");
    let secrets = dir.join("secrets");
    fs::create_dir_all(&secrets).unwrap();
    fs::write(secrets.join("db_password"), "hunter2\n").unwrap();
    let a = dir.join("a.conf.tmpl");
    let b = dir.join("b.conf.tmpl");
    fs::write(
        &a,
        "user = {{ DB_USER }}\npassword = {{ secrets.db_password }}\n",
    )
    .unwrap();
    fs::write(&b, "# b\nhost = {{ DB_HOST | upper }}\nx = {{ BOTH }}\n").unwrap();
    let dest_a = dir.join("a.conf");
    let dest_b = dir.join("b.conf");
    let old = b"old content \xff\n";
    fs::write(&dest_b, old).unwrap();
    let marker = dir.join("child-ran");
    let out = run(envinit(
        &[
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "-t",
            &pair(&a, &dest_a),
            "-t",
            &pair(&b, &dest_b),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
        &[("BOTH", "visible-value"), ("BOTH_FILE", "/run/secret-path")],
    ));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for line in [
        format!("{}:1:11: DB_USER is not set", a.display()),
        format!("{}:2:11: DB_HOST is not set", b.display()),
        format!("{}:3:8: both BOTH and BOTH_FILE are set", b.display()),
    ] {
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
    for secret in ["hunter2", "visible-value", "/run/secret-path"] {
        assert!(!stderr.contains(secret), "{secret} leaked:\n{stderr}");
    }
    assert!(!stderr.contains("PATH"), "{stderr}");
    assert!(!dest_a.exists());
    assert_eq!(fs::read(&dest_b).unwrap(), old);
    assert!(!marker.exists(), "the child ran");
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 4, "{leftovers:?}");
}

#[test]
fn check_renders_everything_and_writes_and_runs_nothing() {
    let dir = tempdir("check");
    let out_dir = dir.join("out");
    let out = run(envinit(
        &["--check", "-t", &pair(&examples(), &out_dir)],
        &[],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!out_dir.exists());
    let bad = dir.join("bad.tmpl");
    fs::write(&bad, "{{ if X }}\n{{ Y | nope }}\n").unwrap();
    let out = run(envinit(&["--check", "-t", &pair(&bad, &out_dir)], &[]));
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:1:4: this if is never closed", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:2:8: unknown formatter \"nope\"",
            bad.display()
        )),
        "{stderr}"
    );
}

#[test]
fn directories_render_recursively_with_modes_and_replace_symlinks() {
    let dir = tempdir("tree");
    let src = dir.join("src");
    fs::create_dir_all(src.join("conf.d")).unwrap();
    fs::write(src.join("app.conf.tmpl"), "name={{ NAME }}\n").unwrap();
    fs::write(src.join("conf.d/extra.conf"), "static {\n}\n").unwrap();
    fs::set_permissions(src.join("app.conf.tmpl"), fs::Permissions::from_mode(0o640)).unwrap();
    let out_dir = dir.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let elsewhere = dir.join("elsewhere");
    fs::write(&elsewhere, "untouched").unwrap();
    symlink(&elsewhere, out_dir.join("app.conf")).unwrap();
    let out = run(envinit(
        &["-t", &pair(&src, &out_dir), "true"],
        &[("NAME", "demo")],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = out_dir.join("app.conf");
    assert!(fs::symlink_metadata(&app).unwrap().is_file());
    assert_eq!(fs::read_to_string(&app).unwrap(), "name=demo\n");
    assert_eq!(
        fs::metadata(&app).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
    assert_eq!(
        fs::read_to_string(out_dir.join("conf.d/extra.conf")).unwrap(),
        "static {\n}\n"
    );
}

#[test]
fn non_utf8_variables_only_matter_when_referenced() {
    let dir = tempdir("utf8");
    let t = dir.join("t.tmpl");
    fs::write(&t, "{{ GOOD }}").unwrap();
    let dest = dir.join("t");
    let mut cmd = envinit(&["-t", &pair(&t, &dest), "true"], &[("GOOD", "ok")]);
    cmd.env("JUNK", OsString::from_vec(vec![0xff, 0xfe]));
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(&dest).unwrap(), "ok");
    fs::write(&t, "{{ JUNK }}").unwrap();
    let mut cmd = envinit(&["-t", &pair(&t, &dest), "true"], &[]);
    cmd.env("JUNK", OsString::from_vec(vec![0xff, 0xfe]));
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains(&format!("{}:1:4: JUNK is not valid UTF-8", t.display())));
}

/// Reads `path` as the unprivileged user nobody (65534, no groups).
fn read_as_nobody(path: &Path) -> Finished {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "cat",
    ])
    .arg(path);
    run(cmd)
}

/// A file whose output includes a value read from a secret (`secrets.X`
/// or an `X_FILE`) is not readable by "other" (0644 becomes 0640); a file
/// without one keeps its template's mode; a stricter mode stays.
#[test]
fn rendered_secrets_are_not_world_readable() {
    if !have("setpriv") {
        return;
    }
    let dir = tempdir("secret-mode");
    // Others may enter the directories: only the files' modes protect them.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let secrets = dir.join("secrets");
    let src = dir.join("src");
    let out = dir.join("out");
    fs::create_dir_all(&secrets).unwrap();
    fs::create_dir_all(&src).unwrap();
    fs::write(secrets.join("db_password"), "s3cret\n").unwrap();
    fs::write(dir.join("pw.txt"), "hunter2\n").unwrap();
    let templates = [
        ("www.conf", "password = {{ secrets.db_password }}\n", 0o644),
        ("app.env", "DB_PASSWORD={{ DB_PASSWORD }}\n", 0o664),
        ("plain.conf", "user = {{ USER_NAME }}\n", 0o644),
        (
            "strict.conf",
            "password = {{ secrets.db_password }}\n",
            0o600,
        ),
        (
            "run.sh",
            "#!/bin/sh\nexport P={{ secrets.db_password | shell }}\n",
            0o755,
        ),
    ];
    for (name, body, mode) in templates {
        fs::write(src.join(format!("{name}.tmpl")), body).unwrap();
        fs::set_permissions(
            src.join(format!("{name}.tmpl")),
            fs::Permissions::from_mode(mode),
        )
        .unwrap();
    }
    let pw_file = dir.join("pw.txt");
    let result = run(envinit(
        &[
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "-t",
            &pair(&src, &out),
            "--",
            "true",
        ],
        &[
            ("DB_PASSWORD_FILE", pw_file.to_str().unwrap()),
            ("USER_NAME", "www-data"),
        ],
    ));
    assert!(result.status.success(), "{}", text(&result.stderr));
    for (name, want) in [
        ("www.conf", 0o640),
        ("app.env", 0o640),
        ("plain.conf", 0o644),
        ("strict.conf", 0o600),
        ("run.sh", 0o750),
    ] {
        let mode = fs::metadata(out.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{name}: {mode:o}");
    }
    for name in ["www.conf", "app.env", "strict.conf", "run.sh"] {
        let read = read_as_nobody(&out.join(name));
        assert!(!read.status.success(), "nobody read {name}");
        assert!(read.stdout.is_empty(), "nobody read {name}");
        assert!(
            text(&read.stderr).contains("Permission denied"),
            "{name}: {}",
            text(&read.stderr)
        );
    }
    let read = read_as_nobody(&out.join("plain.conf"));
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(text(&read.stdout), "user = www-data\n");
    let _ = fs::remove_dir_all(&dir);
}

/// envinit killed with SIGKILL while staging (an engine's timeout, the OOM
/// killer) never leaves a partial file, and the next start removes the
/// staged files it left beside the destinations.
#[test]
fn a_kill_during_staging_leaves_nothing_after_the_next_start() {
    let dir = tempdir("kill-staging");
    let src = dir.join("src");
    let out = dir.join("out");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&out).unwrap();
    let files = 400;
    for i in 0..files {
        fs::write(
            src.join(format!("f{i:03}.conf.tmpl")),
            format!("value = {{{{ V }}}} {i}\n"),
        )
        .unwrap();
    }
    // A stale staged file as a crash leaves it, and a look-alike of
    // someone else's that must stay.
    fs::write(out.join(".envinit-1-7-0.tmp"), "half").unwrap();
    fs::write(out.join(".envinit-notes.tmp"), "mine").unwrap();
    let staged = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".envinit-") && n != ".envinit-notes.tmp")
            .collect()
    };

    // Catch envinit mid-staging: SIGKILL as soon as a staged file appears
    // that is not the planted one. The kill may come too late (envinit
    // done): then the rendered files go and it starts again, up to
    // ATTEMPTS times.
    const ATTEMPTS: usize = 20;
    let mut caught = false;
    for _ in 0..ATTEMPTS {
        let run = Spec::direct(["-t", &pair(&src, &out), "--", "true"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("V", "new")
            .timeout(Duration::from_secs(30))
            .start();
        let pid = run.spawned_pid();
        let ours = |dir: &Path| staged(dir).iter().any(|n| n != ".envinit-1-7-0.tmp");
        loop {
            if ours(&out) {
                let _ = common::send(pid, common::sig::KILL);
                break;
            }
            if common::stat(pid).is_none_or(|s| s.state == 'Z') {
                break;
            }
            std::thread::yield_now();
        }
        let ended = run.wait();
        // The case happened when the kill left staged files behind.
        caught = ended.signal == Some(common::sig::KILL) && ours(&out);
        if caught {
            break;
        }
        for i in 0..files {
            let _ = fs::remove_file(out.join(format!("f{i:03}.conf")));
        }
    }
    if caught {
        // All old or all new: each destination is absent or complete.
        for i in 0..files {
            if let Ok(body) = fs::read_to_string(out.join(format!("f{i:03}.conf"))) {
                assert_eq!(body, format!("value = new {i}\n"));
            }
        }
    } else {
        common::skip_case(
            this_test!(),
            "a kill during staging",
            &format!("envinit finished staging before the kill in {ATTEMPTS} attempts"),
        );
    }

    let result = run(envinit(
        &["-t", &pair(&src, &out), "--", "true"],
        &[("V", "new")],
    ));
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert_eq!(
        staged(&out),
        Vec::<String>::new(),
        "staged files left behind"
    );
    assert_eq!(
        fs::read_to_string(out.join(".envinit-notes.tmp")).unwrap(),
        "mine"
    );
    for i in 0..files {
        assert_eq!(
            fs::read_to_string(out.join(format!("f{i:03}.conf"))).unwrap(),
            format!("value = new {i}\n")
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// The rendering options from their variables, end to end: ENVINIT_TEMPLATE
/// (a list), ENVINIT_SECRETS_DIR, ENVINIT_INI, ENVINIT_CHECK; the command
/// line's `-t` replaces the variable's whole list.
#[test]
fn rendering_options_work_from_their_variables() {
    let dir = tempdir("variables");
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();
    fs::create_dir_all(dir.join("secrets")).unwrap();
    fs::write(dir.join("secrets/token"), "t0k\n").unwrap();
    fs::write(dir.join("a.tmpl"), "a = {{ A }}\n").unwrap();
    fs::write(dir.join("b.tmpl"), "secret = {{ secrets.token }}\n").unwrap();
    let templates = format!(
        "{}:{}, {}:{}",
        at("a.tmpl"),
        at("a.out"),
        at("b.tmpl"),
        at("b.out")
    );
    let ini = format!("APP_:{}", at("app.ini"));
    let secrets = at("secrets");
    let out = run(envinit(
        &["cat", &at("a.out"), &at("b.out"), &at("app.ini")],
        &[
            ("A", "1"),
            ("APP_key", "value"),
            ("APP_main__x", "y"),
            ("ENVINIT_TEMPLATE", &templates),
            ("ENVINIT_SECRETS_DIR", &secrets),
            ("ENVINIT_INI", &ini),
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "a = 1\nsecret = t0k\n\
         ; Written by envinit from the variables APP_*: change those, not this file.\n\
         key = value\n\n[main]\nx = y\n"
    );

    // The command line's -t replaces ENVINIT_TEMPLATE's list.
    let only = format!("{}:{}", at("a.tmpl"), at("only.out"));
    let out = run(envinit(
        &["-t", &only, "--", "true"],
        &[("A", "2"), ("ENVINIT_TEMPLATE", &templates)],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(dir.join("only.out")).unwrap(), "a = 2\n");
    assert_eq!(fs::read_to_string(dir.join("a.out")).unwrap(), "a = 1\n");

    // ENVINIT_CHECK: renders in memory, writes nothing, runs nothing.
    let check = format!("{}:{}", at("a.tmpl"), at("c.out"));
    for (value, a, code) in [("1", Some("3"), 0), ("yes", None, 78)] {
        let mut env = vec![
            ("ENVINIT_CHECK", value),
            ("ENVINIT_TEMPLATE", check.as_str()),
        ];
        if let Some(a) = a {
            env.push(("A", a));
        }
        let ran = at("ran");
        let out = run(envinit(&["touch", &ran], &env));
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        assert!(!dir.join("c.out").exists(), "--check wrote");
        assert!(!dir.join("ran").exists(), "--check ran the command");
        if code == 78 {
            assert!(
                text(&out.stderr).contains(&format!("{}:1:8: A is not set", at("a.tmpl"))),
                "{}",
                text(&out.stderr)
            );
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
