//! Legacy apps (issue 7), end to end with envinit as the real PID 1 of a new
//! pid namespace: `--user` with real users and groups made by
//! useradd/groupadd (ids, groups and HOME read from /proc/self/status inside
//! the child), rendered files owned by that user, a grace-period SIGKILL
//! reaching a child that changed uid; `--wait` on real TCP, HTTP (503 first)
//! and unix-socket servers that come up only once envinit has seen them
//! down, a dependency that never comes up (exit 69, app not started), a stop
//! signal during the wait; `--probe` against the same; `--export-file-var`
//! (only the named `X_FILE` variables, errors, restarts).
//! Servers start on events from envinit's debug lines, never after sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{EVENT_TIMEOUT, Mode, Running, Spec, TempDir, have_unshare, sig};

// ---------------------------------------------------------------------------
// Helpers

/// A user and groups made with groupadd/useradd, removed on drop (a failed
/// test too). Names are `eit` + this run's id + a counter: unique on the
/// machine, and recognisable, so the first account of a run removes those
/// that killed runs left ([`sweep_accounts`]).
struct Account {
    user: String,
    groups: Vec<String>,
}

/// The prefix of every account name these tests make.
const ACCOUNT_PREFIX: &str = "eit";

impl Account {
    /// `eit<run>-<n><tag>` with primary group `...p` and supplementary
    /// `...s`, home `/home/<user>` (not created). None (a skip, or a
    /// failure under CI) when groupadd or useradd cannot make them.
    fn make(tag: &str) -> Option<Account> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_accounts);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let user = format!("{ACCOUNT_PREFIX}{}-{n}{tag}", common::run_id());
        let (primary, extra) = (format!("{user}p"), format!("{user}s"));
        let mut account = Account {
            user: user.clone(),
            groups: Vec::new(),
        };
        for g in [&primary, &extra] {
            if !common::prerequisite("groupadd", tool_fails("groupadd", &[g])) {
                return None;
            }
            account.groups.push(g.clone());
        }
        let home = format!("/home/{user}");
        let useradd = [
            "-M", "-d", &home, "-g", &primary, "-G", &extra, "-s", "/bin/sh", &user,
        ];
        if !common::prerequisite("useradd", tool_fails("useradd", &useradd)) {
            return None;
        }
        Some(account)
    }

    fn uid(&self) -> u32 {
        common::ok(Command::new("id").args(["-u", &self.user]))
            .trim()
            .parse()
            .unwrap()
    }

    fn gid(&self, group: usize) -> u32 {
        let line = common::ok(Command::new("getent").args(["group", &self.groups[group]]));
        line.split(':').nth(2).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = tool_fails("userdel", &[&self.user]);
        for g in &self.groups {
            let _ = tool_fails("groupdel", &[g]);
        }
    }
}

/// Removes the users and groups that runs no longer running left (killed
/// before their accounts' drop): names `eit<run id>-...` whose run is gone.
fn sweep_accounts() {
    let left = |file: &str| -> Vec<String> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').next())
            .filter(|name| {
                name.strip_prefix(ACCOUNT_PREFIX)
                    .and_then(common::split_run_id)
                    .is_some_and(|(run, rest)| rest.starts_with('-') && !common::run_alive(run))
            })
            .map(String::from)
            .collect()
    };
    for user in left("/etc/passwd") {
        let _ = tool_fails("userdel", &[&user]);
    }
    for group in left("/etc/group") {
        let _ = tool_fails("groupdel", &[&group]);
    }
}

/// None when `program args...` succeeds; else what went wrong (it is not
/// installed, or failed and said why).
fn tool_fails(program: &str, args: &[&str]) -> Option<String> {
    common::probe(program, args)
}

/// The ids a process reports in /proc/self/status, as the child prints them.
const REPORT_IDS: &str = "grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo \"HOME=$HOME\"";

/// (real, effective, saved, fs) from a `Uid:`/`Gid:` line; the numbers of a
/// `Groups:` line.
fn ids_line(out: &str, field: &str) -> Vec<u32> {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} line in {out:?}"));
    line[field.len() + 1..]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until envinit's stderr has a line containing `text`.
fn wait_err(run: &Running, text: &str) {
    let found = run
        .stderr
        .wait_for(EVENT_TIMEOUT, |t| t.contains(text).then_some(()));
    assert!(
        found.is_some(),
        "no {text:?} on stderr:\n{}",
        run.stderr.text()
    );
}

/// A tiny HTTP server: answers 503 until `healthy` is set, then 200.
fn http_server(listener: TcpListener, healthy: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            assert!(text.starts_with("GET /health?full HTTP/1.1\r\n"), "{text}");
            assert!(text.contains("\r\nHost: 127.0.0.1:"), "{text}");
            let answer: &[u8] = if healthy.load(Ordering::SeqCst) {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = conn.write_all(answer);
        }
    });
}

// ---------------------------------------------------------------------------
// --user

#[test]
fn the_child_runs_as_the_user_with_its_groups_and_home() {
    if !have_unshare() {
        return;
    }
    let Some(account) = Account::make("a") else {
        return;
    };
    let out = Spec::pid1(["--user", &account.user, "--", "sh", "-c", REPORT_IDS])
        .env("HOME", "/root")
        .run();
    out.assert_code(0);
    let text = out.out();
    let (uid, gid, extra) = (account.uid(), account.gid(0), account.gid(1));
    assert_eq!(ids_line(&text, "Uid"), [uid; 4], "{text}");
    assert_eq!(ids_line(&text, "Gid"), [gid; 4], "{text}");
    let mut groups = ids_line(&text, "Groups");
    groups.sort_unstable();
    let mut expected = vec![gid, extra];
    expected.sort_unstable();
    assert_eq!(groups, expected, "no root group kept: {text}");
    assert!(
        text.contains(&format!("HOME=/home/{}\n", account.user)),
        "{text}"
    );

    // USER:GROUP by names: the gid is the group's, the member groups stay.
    let spec = format!("{}:{}", account.user, account.groups[1]);
    let out = Spec::pid1(["-u", &spec, "--", "sh", "-c", REPORT_IDS]).run();
    out.assert_code(0);
    assert_eq!(ids_line(&out.out(), "Gid"), [extra; 4]);
}

#[test]
fn a_numeric_uid_needs_no_entry() {
    if !have_unshare() {
        return;
    }
    let out = Spec::pid1(["--user", "54321", "--", "sh", "-c", REPORT_IDS])
        .env("HOME", "/root")
        .run();
    out.assert_code(0);
    let text = out.out();
    assert_eq!(ids_line(&text, "Uid"), [54321; 4], "{text}");
    assert_eq!(
        ids_line(&text, "Gid"),
        [54321; 4],
        "not root's group: {text}"
    );
    assert_eq!(ids_line(&text, "Groups"), [54321], "{text}");
    assert!(text.contains("HOME=/\n"), "{text}");

    let out = Spec::pid1(["--", "sh", "-c", REPORT_IDS])
        .env("ENVINIT_USER", "54321:54322")
        .run();
    out.assert_code(0);
    assert_eq!(ids_line(&out.out(), "Gid"), [54322; 4]);
}

#[test]
fn bad_users_exit_78_before_anything_starts() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("baduser");
    let tmpl = dir.join("a.tmpl");
    std::fs::write(&tmpl, "x\n").unwrap();
    let dest = dir.join("out/a.conf");
    let pair = format!("{tmpl}:{dest}");
    for (user, why) in [
        (
            "no-such-user-envinit",
            "no user \"no-such-user-envinit\" in /etc/passwd",
        ),
        (
            "root:no-such-group-envinit",
            "no group \"no-such-group-envinit\" in /etc/group",
        ),
        ("root:", "USER[:GROUP]"),
    ] {
        let out = Spec::pid1(["--user", user, "-t", &pair, "--", "echo", "started"]).run();
        out.assert_code(78);
        assert!(out.out().is_empty(), "the app must not start");
        assert!(out.err().contains(why), "{}", out.describe());
        assert_eq!(out.err_lines().len(), 1, "one line: {}", out.describe());
        assert!(!std::path::Path::new(&dest).exists(), "nothing written");
    }
}

/// A malformed /etc/passwd line is one error naming FILE:LINE, exit 78,
/// nothing started. The broken file is bind-mounted over /etc/passwd in
/// the test's own mount namespace (unshare --mount-proc makes one), then
/// the shell execs envinit, which stays PID 1.
#[test]
fn a_malformed_passwd_line_names_file_and_line_and_starts_nothing() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("badpasswd");
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/sh\nbroken-line-without-fields\n",
    )
    .unwrap();
    let out = in_mount_namespace(
        &format!("mount --bind {passwd} /etc/passwd"),
        &["--user", "nobody", "--", "echo", "started"],
    );
    out.assert_code(78);
    assert!(
        out.out().is_empty(),
        "the app must not start: {}",
        out.describe()
    );
    assert_eq!(out.err_lines().len(), 1, "one line: {}", out.describe());
    assert!(
        out.err().contains("/etc/passwd:2: malformed line"),
        "{}",
        out.describe()
    );
}

/// The same for a malformed /etc/group line (`--user nobody` reads the
/// groups that list the user).
#[test]
fn a_malformed_group_line_names_file_and_line_and_starts_nothing() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("badgroup");
    let group = dir.join("group");
    std::fs::write(&group, "root:x:0:\nstaff:x:-1:\n").unwrap();
    let out = in_mount_namespace(
        &format!("mount --bind {group} /etc/group"),
        &["--user", "nobody", "--", "echo", "started"],
    );
    out.assert_code(78);
    assert!(
        out.out().is_empty(),
        "the app must not start: {}",
        out.describe()
    );
    assert_eq!(out.err_lines().len(), 1, "one line: {}", out.describe());
    assert!(
        out.err().contains("/etc/group:2: malformed line: the gid"),
        "{}",
        out.describe()
    );
}

/// envinit as PID 1 (`unshare --pid --fork --mount-proc`: a mount namespace
/// of the test's own) after `setup`, a shell command run as root in that
/// namespace (bind mounts over /etc files); then the shell execs envinit
/// with `args`, which stays PID 1.
fn in_mount_namespace(setup: &str, args: &[&str]) -> common::Finished {
    let script = format!("{setup} && exec \"$0\" \"$@\"");
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .arg(common::envinit())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    Running::spawn(command, Mode::Pid1, None, common::RUN_TIMEOUT, None).wait()
}

#[test]
fn user_while_not_root_only_names_the_current_user() {
    if !common::prerequisite("setpriv", common::probe("setpriv", &["--help"])) {
        return;
    }
    let as_nobody = |args: &[&str]| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=54321", "--regid=54321", "--clear-groups"])
            .arg(common::envinit())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Running::spawn(command, Mode::Direct, None, common::RUN_TIMEOUT, None).wait()
    };
    let out = as_nobody(&["--user", "1000", "--", "echo", "started"]);
    out.assert_code(78);
    assert!(out.out().is_empty());
    assert!(out.err().contains("not as root"), "{}", out.describe());
    let out = as_nobody(&["--user", "54321", "--", "sh", "-c", "id -u; echo $HOME"]);
    out.assert_code(0);
    assert_eq!(out.out(), "54321\n/\n", "{}", out.describe());
}

#[test]
fn rendered_files_and_created_directories_belong_to_the_user() {
    if !have_unshare() {
        return;
    }
    let Some(account) = Account::make("r") else {
        return;
    };
    let dir = TempDir::new("owned");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tmpl = dir.join("app.conf.tmpl");
    std::fs::write(&tmpl, "name = {{ NAME }}\n").unwrap();
    let dest = dir.join("etc/app/app.conf");
    let pair = format!("{tmpl}:{dest}");
    // The app (as the user) rewrites its own config.
    let script = format!("echo 'more = 1' >> {dest} && cat {dest}");
    let out = Spec::pid1([
        "--user",
        &account.user,
        "-t",
        &pair,
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("NAME", "legacy")
    .run();
    out.assert_code(0);
    assert_eq!(out.out(), "name = legacy\nmore = 1\n", "{}", out.describe());
    let (uid, gid) = (account.uid(), account.gid(0));
    for path in [dest.clone(), dir.join("etc/app"), dir.join("etc")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{path}");
    }
    let meta = std::fs::metadata(dir.path()).unwrap();
    assert_eq!(meta.uid(), 0, "an existing directory keeps its owner");
}

#[test]
fn the_grace_sigkill_reaches_a_child_that_changed_uid() {
    if !have_unshare() {
        return;
    }
    let run = Spec::pid1([
        "--user",
        "54321",
        "--grace",
        "1s",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    ])
    .start();
    run.wait_line("ready");
    let child = run.main_child("sh");
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap();
    assert_eq!(ids_line(&status, "Uid"), [54321; 4]);
    run.signal(sig::TERM);
    let out = run.wait();
    out.assert_code(128 + sig::KILL);
    assert!(out.elapsed < Duration::from_secs(15), "{}", out.describe());
}

// ---------------------------------------------------------------------------
// --export-file-var NAME

/// envinit's error lines (`envinit: error: ...`) in `out`'s stderr.
fn error_lines(out: &common::Finished) -> Vec<String> {
    out.err_lines()
        .into_iter()
        .filter(|l| l.starts_with("envinit: error: "))
        .collect()
}

#[test]
fn named_file_vars_are_exported_and_every_other_file_var_is_untouched() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("filevars");
    let secret = dir.join("db_password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    // Readable by root only: envinit reads it before the user switch.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    // A binary Java keystore of 1.1 MB: more than a variable can hold.
    let keystore = dir.join("k.jks");
    std::fs::write(&keystore, common::noise(1_100_000, 7)).unwrap();
    let log = dir.join("app.log");
    std::fs::write(&log, "old line\n").unwrap();
    let script = "echo \"pw=$DB_PASSWORD file=${DB_PASSWORD_FILE-unset} ssl=$SSL_CERT_FILE \
        ssl_cert=${SSL_CERT-unset} log=$LOG_FILE log_=${LOG-unset} ks=$KEYSTORE_FILE \
        ks_=${KEYSTORE-unset} id=$(id -u)\"; cat \"$0\" 2>/dev/null || echo unreadable";
    let out = Spec::pid1([
        "--export-file-var",
        "DB_PASSWORD",
        "--user",
        "54321",
        "--",
        "sh",
        "-c",
        script,
        &secret,
    ])
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap())
    .env("DB_PASSWORD_FILE", &secret)
    .env("SSL_CERT_FILE", &ca)
    .env("LOG_FILE", &log)
    .env("KEYSTORE_FILE", &keystore)
    .run();
    out.assert_code(0);
    assert_eq!(
        out.out(),
        format!(
            "pw=s3cret file=unset ssl={ca} ssl_cert=unset log={log} log_=unset ks={keystore} \
             ks_=unset id=54321\nunreadable\n"
        ),
        "{}",
        out.describe()
    );
    assert!(out.err().is_empty(), "{}", out.describe());

    // The variable's list form, two names; a name whose file variable is
    // not set is nothing to export.
    let token = dir.join("token");
    std::fs::write(&token, "t0ken\r\n").unwrap();
    let out = Spec::pid1([
        "sh",
        "-c",
        "echo \"$DB_PASSWORD $API_TOKEN ${API_TOKEN_FILE-unset} ${UNSET-unset}\"",
    ])
    .env("ENVINIT_EXPORT_FILE_VAR", "DB_PASSWORD, API_TOKEN, UNSET")
    .env("DB_PASSWORD_FILE", &secret)
    .env("API_TOKEN_FILE", &token)
    .run();
    out.assert_code(0);
    assert_eq!(
        out.out(),
        "s3cret t0ken unset unset\n",
        "{}",
        out.describe()
    );

    // Without the option the environment stays as it was.
    let out = Spec::pid1(["sh", "-c", script, &secret])
        .env("DB_PASSWORD_FILE", &secret)
        .run();
    out.assert_code(0);
    assert!(
        out.out().starts_with(&format!("pw= file={secret} ")),
        "{}",
        out.describe()
    );

    // Both set: exit 78, nothing started, no secret in the message.
    let out = Spec::pid1(["sh", "-c", "echo started"])
        .env("ENVINIT_EXPORT_FILE_VAR", "DB_PASSWORD")
        .env("DB_PASSWORD", "other")
        .env("DB_PASSWORD_FILE", &secret)
        .run();
    out.assert_code(78);
    assert!(out.out().is_empty());
    assert!(
        out.err()
            .contains("both DB_PASSWORD and DB_PASSWORD_FILE are set"),
        "{}",
        out.describe()
    );
    assert!(!out.err().contains("s3cret") && !out.err().contains("other"));
}

#[test]
fn a_named_file_var_that_cannot_be_a_variable_is_exit_78_and_nothing_starts() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("filevars-bad");
    let big = dir.join("big");
    std::fs::write(&big, "x".repeat(200 << 10)).unwrap();
    let keystore = dir.join("k.jks");
    std::fs::write(&keystore, common::noise(1_100_000, 11)).unwrap();
    let nul = dir.join("nul");
    std::fs::write(&nul, "s3c\0ret\n").unwrap();
    let missing = dir.join("missing");
    let binary = dir.join("binary");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    for (name, file, why) in [
        (
            "BIG",
            &big,
            "larger than one environment variable can hold (128 KiB with its name",
        ),
        (
            "KEYSTORE",
            &keystore,
            "larger than one environment variable can hold (128 KiB with its name",
        ),
        ("DB_PASSWORD", &nul, "holds a NUL byte"),
        ("DB_PASSWORD", &missing, "does not exist"),
        ("DB_PASSWORD", &binary, "is not valid UTF-8"),
        (
            "DB_PASSWORD",
            &dir.path().to_str().unwrap().to_string(),
            "is not a regular file",
        ),
    ] {
        let out = Spec::pid1(["--export-file-var", name, "--", "sh", "-c", "echo started"])
            .env(format!("{name}_FILE"), file)
            .run();
        out.assert_code(78);
        assert!(out.out().is_empty(), "nothing starts: {}", out.describe());
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{}", out.describe());
        assert!(
            errors[0].starts_with(&format!(
                "envinit: error: --export-file-var {name}: {name}_FILE names a file"
            )) && errors[0].contains(why),
            "{why}: {}",
            out.describe()
        );
        assert!(
            !out.err().contains(file.as_str()),
            "the path is a value: {}",
            out.describe()
        );
        assert!(!out.err().contains("s3c") && !out.err().contains("xxxx"));
    }

    // Exactly the kernel's limit for one entry (MAX_ARG_STRLEN, 128 KiB
    // with `NAME=` and the NUL) is exported, and the exec takes it.
    let fits = dir.join("fits");
    std::fs::write(
        &fits,
        format!("{}\n", "x".repeat((128 << 10) - "FITS=".len() - 1)),
    )
    .unwrap();
    let out = Spec::pid1([
        "--export-file-var",
        "FITS",
        "--",
        "sh",
        "-c",
        "echo ${#FITS}",
    ])
    .env("FITS_FILE", &fits)
    .run();
    out.assert_code(0);
    assert_eq!(
        out.out(),
        format!("{}\n", (128 << 10) - 6),
        "{}",
        out.describe()
    );
}

#[test]
fn a_restart_does_not_move_the_rendered_config_into_the_environment() {
    // The issue's Swarm case: CONFIG_FILE names the file envinit renders,
    // with the password in it. At the second start the file exists; it
    // must not become CONFIG=<the rendered config> then.
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("filevars-restart");
    let secret = dir.join("db_password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let template = dir.join("app.conf.tmpl");
    std::fs::write(&template, "password = {{ DB_PASSWORD }}\n").unwrap();
    let conf = dir.join("app.conf");
    let start = || {
        Spec::pid1([
            "--export-file-var",
            "DB_PASSWORD",
            "-t",
            &format!("{template}:{conf}"),
            "--",
            "env",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("DB_PASSWORD_FILE", &secret)
        .env("CONFIG_FILE", &conf)
        .env("LOG_FILE", dir.join("app.log"))
        .run()
    };
    let first = start();
    first.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "password = s3cret\n"
    );
    let second = start();
    second.assert_code(0);
    let sorted = |out: &common::Finished| {
        let mut lines: Vec<String> = out.out().lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&first), sorted(&second), "{}", second.describe());
    let env = sorted(&second);
    assert!(env.contains(&format!("CONFIG_FILE={conf}")), "{env:?}");
    assert!(env.contains(&"DB_PASSWORD=s3cret".to_string()), "{env:?}");
    assert!(!env.iter().any(|l| l.starts_with("CONFIG=")), "{env:?}");
    assert_eq!(
        env.iter().filter(|l| l.contains("s3cret")).count(),
        1,
        "the secret is only in DB_PASSWORD: {env:?}"
    );
}

#[test]
fn the_old_boolean_says_what_replaced_it() {
    if !have_unshare() {
        return;
    }
    let out = Spec::pid1(["--export-file-vars", "--", "sh", "-c", "echo started"]).run();
    out.assert_code(64);
    assert!(out.out().is_empty());
    assert_eq!(
        error_lines(&out),
        [
            "envinit: error: --export-file-vars was replaced by --export-file-var NAME (repeatable): \
          name the variables to export, e.g. --export-file-var MYSQL_PASSWORD (see envinit --help)"
        ],
        "{}",
        out.describe()
    );
    let out = Spec::pid1(["sh", "-c", "echo started"])
        .env("ENVINIT_EXPORT_FILE_VARS", "1")
        .run();
    out.assert_code(78);
    assert!(out.out().is_empty());
    assert_eq!(
        error_lines(&out),
        [
            "envinit: error: ENVINIT_EXPORT_FILE_VARS was replaced by ENVINIT_EXPORT_FILE_VAR \
          (a list): name the variables to export, e.g. \
          ENVINIT_EXPORT_FILE_VAR=MYSQL_PASSWORD,API_TOKEN"
        ],
        "{}",
        out.describe()
    );
    // A name with _FILE is a usage error that says to drop it.
    let out = Spec::pid1(["--export-file-var", "DB_PASSWORD_FILE", "--", "true"]).run();
    out.assert_code(64);
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{}", out.describe());
    assert!(errors[0].contains("drop _FILE"), "{}", out.describe());
}

// ---------------------------------------------------------------------------
// --wait

#[test]
fn waits_for_tcp_http_unix_and_file_dependencies_that_come_up_later() {
    if !have_unshare() {
        return;
    }
    let dir = TempDir::new("wait");
    let (tcp_port, http_port) = (free_port(), free_port());
    let sock = dir.join("app.sock");
    let flag = dir.join("ready.flag");
    let tcp = format!("tcp://127.0.0.1:{tcp_port}");
    let http = format!("http://127.0.0.1:{http_port}/health?full");
    let unix = format!("unix://{sock}");
    let file = format!("file://{flag}");
    let run = Spec::pid1([
        "--wait", &tcp, "--wait", &http, "--wait", &unix, "--", "echo", "started",
    ])
    .env("ENVINIT_WAIT", &file) // replaced by the command line's list
    .env("ENVINIT_LOG", "debug")
    .start();
    // Each server comes up only once envinit has found it down.
    wait_err(
        &run,
        &format!("dependency={tcp} reason=\"connection refused\""),
    );
    let _tcp = TcpListener::bind(("127.0.0.1", tcp_port)).unwrap();
    wait_err(&run, &format!("info: ready dependency={tcp}"));
    wait_err(
        &run,
        &format!("dependency={http} reason=\"connection refused\""),
    );
    let healthy = Arc::new(AtomicBool::new(false));
    http_server(
        TcpListener::bind(("127.0.0.1", http_port)).unwrap(),
        Arc::clone(&healthy),
    );
    wait_err(&run, &format!("dependency={http} reason=\"status 503\""));
    assert!(!run.stdout.text().contains("started"), "started too early");
    healthy.store(true, Ordering::SeqCst);
    wait_err(
        &run,
        &format!("dependency={unix} reason=\"no such file or directory\""),
    );
    let _unix = UnixListener::bind(&sock).unwrap();
    let out = run.wait();
    out.assert_code(0);
    assert_eq!(out.out(), "started\n");
    for url in [&tcp, &http, &unix] {
        assert!(
            out.err().contains(&format!("info: ready dependency={url}")),
            "{}",
            out.describe()
        );
    }
    assert!(!out.err().contains(&file), "ENVINIT_WAIT was replaced");

    // From ENVINIT_WAIT, comma-separated, a file that exists.
    std::fs::write(&flag, "").unwrap();
    let out = Spec::pid1(["echo", "started"])
        .env("ENVINIT_WAIT", format!("{file}, {tcp}"))
        .env("ENVINIT_LOG", "warn")
        .run();
    out.assert_code(0);
    assert_eq!(out.out(), "started\n");
    assert!(
        out.err().is_empty(),
        "silent when all is well: {}",
        out.err()
    );
}

#[test]
fn a_unix_url_that_names_a_directory_is_refused_at_once() {
    // `unix:///` (the root directory) used to be accepted and waited on
    // until the timeout ("connection refused").
    if !have_unshare() {
        return;
    }
    for url in ["unix:///", "unix:///run/", "unix:///tmp/.."] {
        let out = Spec::pid1([
            "--wait",
            url,
            "--wait-timeout",
            "20s",
            "--",
            "echo",
            "started",
        ])
        .timeout(Duration::from_secs(10))
        .run();
        out.assert_code(64);
        assert!(out.out().is_empty(), "{}", out.describe());
        let errors: Vec<String> = out
            .err_lines()
            .into_iter()
            .filter(|l| l.starts_with("envinit: error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{}", out.describe());
        assert!(
            errors[0].starts_with(&format!("envinit: error: --wait: \"{url}\": names "))
                && errors[0].contains("not a socket"),
            "{}",
            out.describe()
        );
        assert!(out.elapsed < Duration::from_secs(5), "{}", out.describe());
    }
    let out = Spec::pid1(["echo", "started"])
        .env("ENVINIT_WAIT", "unix:///run/app.sock/")
        .timeout(Duration::from_secs(10))
        .run();
    out.assert_code(78);
    assert!(
        out.err()
            .contains("ENVINIT_WAIT: \"unix:///run/app.sock/\": names a directory"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_dependency_that_never_comes_up_exits_69_without_starting_the_app() {
    if !have_unshare() {
        return;
    }
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let out = Spec::pid1([
        "--wait",
        &url,
        "--wait",
        "file:///nonexistent/envinit-ready",
        "--wait-timeout",
        "11s",
        "--",
        "echo",
        "started",
    ])
    .run();
    out.assert_code(69);
    assert!(out.out().is_empty(), "the app must not start");
    let err = out.err();
    assert!(
        err.contains(&format!("still waiting for {url} (connection refused)")),
        "a warning after 10 s: {err}"
    );
    assert!(
        err.contains(&format!("{url} is not ready after 11s: connection refused")),
        "{err}"
    );
    assert!(
        err.contains(
            "file:///nonexistent/envinit-ready is not ready after 11s: no such file or directory"
        ),
        "{err}"
    );
    assert!(out.elapsed < Duration::from_secs(20), "{}", out.describe());
}

/// A DNS server for one test on 127.53.X.Y:53 (a loopback address of its
/// own, so no other test's or the machine's resolver is in the way) that
/// answers every query at once with "no such name", and counts the
/// queries for `name`.
struct NxDomain {
    address: std::net::Ipv4Addr,
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

impl NxDomain {
    fn start(name: &str) -> NxDomain {
        let socket = (0..200u8)
            .find_map(|i| {
                let address =
                    std::net::Ipv4Addr::new(127, 53, (std::process::id() % 250) as u8, i + 1);
                std::net::UdpSocket::bind((address, 53)).ok()
            })
            .expect("a free 127.53.x.y:53");
        let address = match socket.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => *a.ip(),
            other => panic!("{other}"),
        };
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        let wire: Vec<u8> = name
            .split('.')
            .flat_map(|label| std::iter::once(label.len() as u8).chain(label.bytes()))
            .chain([0])
            .collect();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let query = &buf[..n];
                // The header (12 bytes), then the question: a name, type, class.
                let Some(name_len) = query.get(12..).and_then(|q| q.iter().position(|&b| b == 0))
                else {
                    continue;
                };
                let question_end = 12 + name_len + 1 + 4;
                if n < question_end {
                    continue;
                }
                if query[12..12 + name_len + 1].eq_ignore_ascii_case(&wire) {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let mut answer = query[..question_end].to_vec();
                // QR, the query's opcode and RD; RA; RCODE 3 (NXDOMAIN).
                answer[2] = 0x80 | (query[2] & 0x79);
                answer[3] = 0x83;
                answer[6..12].fill(0); // no answer, authority, additional
                let _ = socket.send_to(&answer, from);
            }
        });
        NxDomain { address, asked }
    }
}

/// `--wait`'s "no such host": a name only DNS could know, answered at once
/// by the test's own DNS server (resolv.conf and hosts bind-mounted in the
/// test's mount namespace), gives exit 69 with that reason and no stall;
/// a name of the test-made /etc/hosts is found and waited on as usual.
#[test]
fn an_unknown_host_is_no_such_host_without_waiting_for_dns() {
    if !have_unshare() {
        return;
    }
    let dns = NxDomain::start("nowhere.invalid");
    let dir = TempDir::new("nxdomain");
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", dns.address)).unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 envinit-dep.test\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = format!(
        "tcp://envinit-dep.test:{}",
        listener.local_addr().unwrap().port()
    );
    let setup =
        format!("mount --bind {resolv} /etc/resolv.conf && mount --bind {hosts} /etc/hosts");
    let started = std::time::Instant::now();
    let out = in_mount_namespace(
        &setup,
        &[
            "--wait",
            &up,
            "--wait",
            "tcp://nowhere.invalid:80",
            "--wait-timeout",
            "2s",
            "--",
            "echo",
            "started",
        ],
    );
    let took = started.elapsed();
    out.assert_code(69);
    assert!(out.out().is_empty(), "{}", out.describe());
    let errors: Vec<String> = out
        .err_lines()
        .into_iter()
        .filter(|l| l.starts_with("envinit: error: "))
        .collect();
    assert_eq!(
        errors[..errors.len().saturating_sub(1)],
        ["envinit: error: tcp://nowhere.invalid:80 is not ready after 2s: no such host"],
        "only the unknown name is down: {}",
        out.describe()
    );
    assert!(dns.asked.load(Ordering::SeqCst) > 0, "DNS was not asked");
    // musl's resolver gives up on a silent server after 5 s: the answers
    // came at once.
    assert!(
        took < Duration::from_millis(4500),
        "took {took:?}: {}",
        out.describe()
    );
}

/// `--wait http://...` and `--probe`: a 302 is not ready, and its Location
/// is never fetched (redirects are not followed).
#[test]
fn an_http_redirect_is_not_followed() {
    if !have_unshare() {
        return;
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = server.local_addr().unwrap();
    let followed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&followed);
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let answer = if request.starts_with(b"GET /ok ") {
                seen.store(true, Ordering::SeqCst);
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()
            } else {
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://{address}/ok\r\nContent-Length: 0\r\n\r\n"
                )
            };
            let _ = conn.write_all(answer.as_bytes());
        }
    });
    let url = format!("http://{address}/old");
    let out = Spec::pid1([
        "--wait",
        &url,
        "--wait-timeout",
        "1s",
        "--",
        "echo",
        "started",
    ])
    .run();
    out.assert_code(69);
    assert!(out.out().is_empty(), "{}", out.describe());
    assert!(
        out.err()
            .contains(&format!("{url} is not ready after 1s: status 302")),
        "{}",
        out.describe()
    );
    let out = Spec::direct(["--probe", &url]).run();
    out.assert_code(1);
    assert_eq!(
        out.err_lines(),
        [format!("envinit: error: {url}: status 302")],
        "{}",
        out.describe()
    );
    assert!(!followed.load(Ordering::SeqCst), "the Location was fetched");
}

#[test]
fn a_stop_signal_during_the_wait_ends_envinit_at_once() {
    if !have_unshare() {
        return;
    }
    let url = format!("tcp://127.0.0.1:{}", free_port());
    let run = Spec::pid1([
        "--wait",
        &url,
        "--wait-timeout",
        "60s",
        "--",
        "echo",
        "started",
    ])
    .env("ENVINIT_LOG", "debug")
    .start();
    wait_err(&run, "reason=\"connection refused\"");
    run.signal(sig::HUP);
    run.signal(sig::TERM);
    let out = run.wait();
    out.assert_code(128 + sig::TERM);
    assert!(out.out().is_empty(), "the app must not start");
    assert!(out.elapsed < Duration::from_secs(10), "{}", out.describe());
}

// ---------------------------------------------------------------------------
// --probe

#[test]
fn probes_report_each_dependency_once() {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_up = format!("tcp://{}", up.local_addr().unwrap());
    let tcp_down = format!("tcp://127.0.0.1:{}", free_port());
    let healthy = Arc::new(AtomicBool::new(true));
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = format!("http://{}/health?full", server.local_addr().unwrap());
    http_server(server, Arc::clone(&healthy));
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_silent = format!("http://{}/", silent.local_addr().unwrap());

    let out = Spec::direct(["--probe", &tcp_up, "--probe", &http]).run();
    out.assert_code(0);
    assert!(
        out.err().is_empty() && out.out().is_empty(),
        "{}",
        out.describe()
    );

    healthy.store(false, Ordering::SeqCst);
    let out = Spec::direct([
        "--probe",
        &tcp_up,
        "--probe",
        &http,
        "--probe",
        &tcp_down,
        "--probe",
        &http_silent,
        "--probe-timeout",
        "500ms",
    ])
    .run();
    out.assert_code(1);
    let lines = out.err_lines();
    assert_eq!(lines.len(), 3, "{}", out.describe());
    assert_eq!(lines[0], format!("envinit: error: {http}: status 503"));
    assert_eq!(
        lines[1],
        format!("envinit: error: {tcp_down}: connection refused")
    );
    assert_eq!(
        lines[2],
        format!("envinit: error: {http_silent}: timed out")
    );
    assert!(out.elapsed < Duration::from_secs(5), "{}", out.describe());

    // As PID 1 too, from ENVINIT_PROBE with no command; a command with
    // --probe is a usage error.
    if have_unshare() {
        let out = Spec::pid1(Vec::<String>::new())
            .env("ENVINIT_PROBE", &tcp_down)
            .run();
        out.assert_code(1);
        assert!(
            out.err().contains("connection refused"),
            "{}",
            out.describe()
        );
    }
    let out = Spec::direct(["--probe", &tcp_up, "echo", "x"]).run();
    out.assert_code(64);
    drop(TcpStream::connect(up.local_addr().unwrap()));
}

/// ENVINIT_WAIT_TIMEOUT and ENVINIT_PROBE_TIMEOUT, the variables of
/// `--wait-timeout` and `--probe-timeout`; the command line wins.
#[test]
fn wait_and_probe_timeouts_work_from_their_variables() {
    if !have_unshare() {
        return;
    }
    let down = format!("tcp://127.0.0.1:{}", free_port());
    let out = Spec::pid1(["--wait", &down, "--", "echo", "started"])
        .env("ENVINIT_WAIT_TIMEOUT", "1s")
        .run();
    out.assert_code(69);
    assert!(
        out.err().contains(&format!("{down} is not ready after 1s")),
        "{}",
        out.describe()
    );
    assert!(out.elapsed < Duration::from_secs(10), "{}", out.describe());
    let out = Spec::pid1(["--wait", &down, "--wait-timeout", "1500ms", "--", "true"])
        .env("ENVINIT_WAIT_TIMEOUT", "60s")
        .run();
    out.assert_code(69);
    assert!(
        out.err()
            .contains(&format!("{down} is not ready after 1500ms")),
        "{}",
        out.describe()
    );

    // Accepts connections (the kernel's backlog) but never answers: the
    // probe ends at its timeout, 300 ms here, not the default 2 s.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let out = Spec::direct(["--probe", &url])
        .env("ENVINIT_PROBE_TIMEOUT", "300ms")
        .run();
    out.assert_code(1);
    assert_eq!(
        out.err_lines(),
        [format!("envinit: error: {url}: timed out")],
        "{}",
        out.describe()
    );
    assert!(
        out.elapsed < Duration::from_millis(1500),
        "the default 2 s, not 300 ms: {}",
        out.describe()
    );
}
