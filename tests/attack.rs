//! The attack suite: envinit runs as root (real PID 1, under unshare)
//! while the app runs as an unprivileged `--user`, and the app tries to use
//! envinit's root rights on paths it controls: a symlink at each component,
//! a rename-and-replace while envinit follows a file, a hard link,
//! `/proc/1/environ`, a planted parent directory under a render
//! destination. Each test states the attack, then checks that envinit
//! reached nothing the app could not reach itself (docs/security.md).
//!
//! Keep adding to it: every feature that opens, writes or chowns a path as
//! root for the app gets its attacks here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// ---------------------------------------------------------------------------
// Followed log files (`--stdout`/`--stderr`): read with the app's rights.
//
// The app (uid 4242, no passwd entry) owns its log directory. It writes a
// first line, which envinit copies; then, at a gate the test opens, it
// points its log's name (or a directory on the way) at something it cannot
// read itself and waits at a second gate until envinit has warned. The
// marker held by the root-only target must never reach envinit's stdout or
// stderr, and envinit says once that it cannot read the file. Gates are
// FIFOs: every step is ordered by events, not by sleeps.

mod follow {
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, chown};
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::common::{
        EVENT_TIMEOUT, Finished, Mode, Running, Spec, TempDir, envinit, have_unshare, wait_until,
    };
    use nix::libc;

    /// The app's uid and gid: no passwd entry needed.
    const APP: u32 = 4242;

    /// What root-only targets hold; it must never be copied.
    const MARKER: &str = "ENVINIT-ATTACK-MARKER-8d41c7";

    /// A scratch tree: `T` (0755, root), `T/secret` (0600 root, the
    /// marker), `T/vlog` (the app's log directory), `T/public` (0644
    /// root, a line anybody may read).
    struct Stage {
        dir: TempDir,
    }

    impl Stage {
        fn new(name: &str) -> Stage {
            let dir = TempDir::new(name);
            chmod(dir.path(), 0o755);
            let stage = Stage { dir };
            stage.app_dir("vlog");
            stage.file("secret", &format!("{MARKER}\n"), 0o600);
            stage.file("public", "public line\n", 0o644);
            stage
        }

        fn path(&self, name: &str) -> String {
            self.dir.join(name)
        }

        /// A directory owned by the app.
        fn app_dir(&self, name: &str) -> String {
            let path = self.path(name);
            std::fs::create_dir(&path).unwrap();
            chmod(Path::new(&path), 0o755);
            chown(&path, Some(APP), Some(APP)).unwrap();
            path
        }

        /// A file owned by root.
        fn file(&self, name: &str, text: &str, mode: u32) -> String {
            let path = self.path(name);
            std::fs::write(&path, text).unwrap();
            chmod(Path::new(&path), mode);
            path
        }

        /// A FIFO the app (another user) can wait at.
        fn gate(&self, name: &str) -> String {
            let path = self.path(name);
            nix::unistd::mkfifo(path.as_str(), nix::sys::stat::Mode::empty()).unwrap();
            chmod(Path::new(&path), 0o666);
            path
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Waits (bounded) until the app is reading `gate`; the open gate,
    /// still closed for the app until [`release`].
    fn reader_at(gate: &str) -> File {
        wait_until(&format!("the app to wait at {gate}"), EVENT_TIMEOUT, || {
            // Without a reader yet, a non-blocking open for writing fails.
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(gate)
                .ok()
        })
    }

    fn release(mut gate: File) {
        gate.write_all(b"go\n").unwrap();
    }

    /// What must come of an attack.
    enum Expect<'a> {
        /// One warning line holding this text and "Permission denied".
        Refused(&'a str),
        /// The target is one the app may read: this line is copied.
        Copied(&'a str),
    }

    /// The warnings of a file envinit refused to read or watch.
    const CANNOT_READ: &str = "cannot read a --stdout/--stderr file";
    const CANNOT_WATCH: &str = "cannot watch the directory of a --stdout/--stderr file";

    /// Runs the app as PID 1's child: `echo before >> LOG`, gate 1,
    /// `attack`, gate 2, `after`. `between` runs in the test once the app
    /// passed gate 1 (an attack only root can stage). Returns the run, with
    /// the expectation checked while it ran.
    fn attack(
        stage: &Stage,
        log: &str,
        attack: &str,
        between: impl FnOnce(),
        expect: Expect<'_>,
        after: &str,
    ) -> Finished {
        let (gate1, gate2) = (stage.gate("gate1"), stage.gate("gate2"));
        let script = format!(
            "echo before >> {log} && read x < {gate1} && {attack} && read x < {gate2} && {after}"
        );
        let run = Spec::pid1([
            "--user",
            &APP.to_string(),
            "--stdout",
            log,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("ENVINIT_LOG", "warn")
        .env("ATTACK_MARKER", MARKER)
        .start();
        run_attack(run, &gate1, &gate2, between, expect)
    }

    fn run_attack(
        run: Running,
        gate1: &str,
        gate2: &str,
        between: impl FnOnce(),
        expect: Expect<'_>,
    ) -> Finished {
        run.wait_line("before");
        release(reader_at(gate1));
        between();
        let gate2 = reader_at(gate2);
        // envinit acts on the attack while the app still runs.
        match expect {
            Expect::Refused(warning) => {
                // The warning, or (the failure) the marker on stdout.
                wait_until(&format!("the warning {warning:?}"), EVENT_TIMEOUT, || {
                    (run.stderr.text().contains(warning) || run.stdout.text().contains(MARKER))
                        .then_some(())
                });
                assert!(
                    !run.stdout.text().contains(MARKER),
                    "the root-only marker leaked while the app ran\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    run.stdout.text(),
                    run.stderr.text()
                );
            }
            Expect::Copied(line) => {
                run.wait_line(line);
            }
        }
        release(gate2);
        let out = run.wait();
        out.assert_code(0);
        assert_no_marker(&out);
        out
    }

    /// The marker (and /etc/shadow) reached neither stdout nor stderr.
    fn assert_no_marker(out: &Finished) {
        let all = format!("{}{}", out.out(), out.err());
        assert!(
            !all.contains(MARKER),
            "the root-only marker leaked:\n{}",
            out.describe()
        );
        let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
        for line in shadow.lines().filter(|l| l.contains(':')) {
            assert!(
                !all.contains(line),
                "a line of /etc/shadow leaked:\n{}",
                out.describe()
            );
        }
    }

    /// Exactly one warning, saying `what` of `path`, "Permission denied".
    fn assert_one_refusal(out: &Finished, what: &str, path: &str) {
        assert_one_refusal_for(out, what, path, "Permission denied");
    }

    /// Exactly one warning, saying `what` of `path`, for `reason`.
    fn assert_one_refusal_for(out: &Finished, what: &str, path: &str, reason: &str) {
        let lines = out.err_lines();
        assert_eq!(lines.len(), 1, "one warning line\n{}", out.describe());
        let line = &lines[0];
        assert!(
            line.starts_with("envinit: warn: ")
                && line.contains(what)
                && line.contains(&format!("path={path}"))
                && line.contains(&format!("error=\"{reason}\"")),
            "{}",
            out.describe()
        );
    }

    fn stdout_lines(out: &Finished) -> Vec<String> {
        out.out().lines().map(String::from).collect()
    }

    #[test]
    fn a_symlink_at_the_file_to_a_root_only_file_is_not_read() {
        if !have_unshare() {
            return;
        }
        for target in ["secret", "/etc/shadow"] {
            let stage = Stage::new("attack-symlink");
            let target = match target.starts_with('/') {
                true => target.to_string(),
                false => stage.path(target),
            };
            let log = stage.path("vlog/access.log");
            let out = attack(
                &stage,
                &log,
                &format!("rm {log} && ln -s {target} {log}"),
                || {},
                Expect::Refused(CANNOT_READ),
                "true",
            );
            assert_one_refusal(&out, CANNOT_READ, &log);
            assert_eq!(stdout_lines(&out), ["before"], "{}", out.describe());
        }
    }

    #[test]
    fn a_symlink_at_a_directory_to_a_root_only_directory_is_not_followed() {
        if !have_unshare() {
            return;
        }
        // The followed file lives in vlog/sub; the app swaps `sub` for a
        // symlink to a root-only directory holding a file of the same name:
        // one it may not search (0700), then one it may search but whose
        // file it may not read (0600).
        for (dir_mode, file_mode, warning) in
            [(0o700, 0o644, CANNOT_WATCH), (0o755, 0o600, CANNOT_READ)]
        {
            let stage = Stage::new("attack-dir");
            let sub = stage.app_dir("vlog/sub");
            let root_dir = stage.path("rootdir");
            std::fs::create_dir(&root_dir).unwrap();
            stage.file("rootdir/access.log", &format!("{MARKER}\n"), file_mode);
            chmod(Path::new(&root_dir), dir_mode);
            let log = format!("{sub}/access.log");
            let out = attack(
                &stage,
                &log,
                &format!("mv {sub} {sub}.old && ln -s {root_dir} {sub}"),
                || {},
                Expect::Refused(warning),
                // Lines the app writes on to its old file still come.
                &format!("echo still >> {sub}.old/access.log"),
            );
            let path = if warning == CANNOT_WATCH { &sub } else { &log };
            assert_one_refusal(&out, warning, path);
            assert_eq!(
                stdout_lines(&out),
                ["before", "still"],
                "{}",
                out.describe()
            );
        }
    }

    #[test]
    fn a_rename_and_replace_while_following_reads_on_the_old_file_only() {
        if !have_unshare() {
            return;
        }
        // A rotation as an app does it, but the new "file" is a symlink to
        // the root-only secret: the renamed file is still copied, the
        // secret is not.
        let stage = Stage::new("attack-rotate");
        let log = stage.path("vlog/access.log");
        let secret = stage.path("secret");
        let out = attack(
            &stage,
            &log,
            &format!("mv {log} {log}.1 && ln -s {secret} {log} && echo after-rename >> {log}.1"),
            || {},
            Expect::Refused(CANNOT_READ),
            &format!("echo later >> {log}.1"),
        );
        assert_one_refusal(&out, CANNOT_READ, &log);
        assert_eq!(
            stdout_lines(&out),
            ["before", "after-rename", "later"],
            "{}",
            out.describe()
        );
    }

    #[test]
    fn a_hard_link_to_a_root_only_file_is_not_read() {
        if !have_unshare() {
            return;
        }
        // fs.protected_hardlinks=1 stops the app from making this link
        // here; where a kernel allows it, the state is the same as when
        // root makes it in the app's directory, as the test does.
        let stage = Stage::new("attack-hardlink");
        let log = stage.path("vlog/access.log");
        let secret = stage.path("secret");
        let out = attack(
            &stage,
            &log,
            &format!("rm {log}"),
            || {
                wait_until("the app to remove its log", EVENT_TIMEOUT, || {
                    (!Path::new(&log).exists()).then_some(())
                });
                std::fs::hard_link(&secret, &log).unwrap();
            },
            Expect::Refused(CANNOT_READ),
            "true",
        );
        assert_one_refusal(&out, CANNOT_READ, &log);
        assert_eq!(stdout_lines(&out), ["before"], "{}", out.describe());
    }

    #[test]
    fn a_symlink_into_proc_is_not_read() {
        if !have_unshare() {
            return;
        }
        // envinit's environment holds the marker (ATTACK_MARKER): its
        // /proc/1/environ (it is PID 1) and /proc/self/environ (resolved by
        // envinit, so its own) are 0400 root, which the app cannot read.
        // Its /proc/1/maps is 0444, but only envinit itself may read it
        // (the kernel's check is "the same process", whatever the fsuid):
        // no file of /proc is ever read.
        for target in [
            "/proc/1/environ",
            "/proc/self/environ",
            "/proc/1/maps",
            "/proc/self/maps",
        ] {
            let stage = Stage::new("attack-environ");
            let log = stage.path("vlog/access.log");
            let out = attack(
                &stage,
                &log,
                &format!("rm {log} && ln -s {target} {log}"),
                || {},
                Expect::Refused(CANNOT_READ),
                "true",
            );
            assert_one_refusal_for(&out, CANNOT_READ, &log, "a file of /proc");
            assert_eq!(stdout_lines(&out), ["before"], "{}", out.describe());
        }
    }

    #[test]
    fn a_fifo_or_a_device_in_place_of_the_log_is_never_opened_for_reading() {
        if !have_unshare() {
            return;
        }
        // Opening a FIFO for reading blocks until a writer comes (PID 1
        // would hang); a device may act on open. Both are refused from a
        // look at what the name is, before any open for reading.
        for attack in [
            "rm {log} && mkfifo {log}",
            "rm {log} && ln -s /dev/zero {log}",
        ] {
            let stage = Stage::new("attack-fifo");
            let log = stage.path("vlog/access.log");
            let out = attack_run(&stage, &log, &attack.replace("{log}", &log));
            assert_one_refusal_for(&out, CANNOT_READ, &log, "not a regular file");
            assert_eq!(stdout_lines(&out), ["before"], "{}", out.describe());
        }
    }

    /// [`attack`] refused with CANNOT_READ, nothing staged by the test, the
    /// app done after gate 2.
    fn attack_run(stage: &Stage, log: &str, script: &str) -> Finished {
        attack(
            stage,
            log,
            script,
            || {},
            Expect::Refused(CANNOT_READ),
            "true",
        )
    }

    #[test]
    fn files_the_app_may_read_are_still_copied() {
        if !have_unshare() {
            return;
        }
        // A symlink to a root-owned 0644 file, then a hard link to one:
        // the app could read them, so envinit copies them (from their
        // start: they are new under the name).
        let stage = Stage::new("attack-legit");
        let log = stage.path("vlog/access.log");
        let public = stage.path("public");
        let out = attack(
            &stage,
            &log,
            &format!("rm {log} && ln -s {public} {log}"),
            || {},
            Expect::Copied("public line"),
            "true",
        );
        assert!(out.err().is_empty(), "{}", out.describe());
        assert_eq!(
            stdout_lines(&out),
            ["before", "public line"],
            "{}",
            out.describe()
        );

        let stage = Stage::new("attack-legit-link");
        let log = stage.path("vlog/access.log");
        let public = stage.path("public");
        let out = attack(
            &stage,
            &log,
            &format!("rm {log}"),
            || {
                wait_until("the app to remove its log", EVENT_TIMEOUT, || {
                    (!Path::new(&log).exists()).then_some(())
                });
                std::fs::hard_link(&public, &log).unwrap();
            },
            Expect::Copied("public line"),
            "true",
        );
        assert!(out.err().is_empty(), "{}", out.describe());
    }

    #[test]
    fn without_proc_the_same_attacks_are_refused() {
        if !have_unshare() {
            return;
        }
        // /proc unmounted in envinit's mount namespace: the reopen through
        // /proc/self/fd is impossible, so envinit opens the path again with
        // the app's rights (and checks it is the same file).
        let stage = Stage::new("attack-noproc");
        let log = stage.path("vlog/access.log");
        let secret = stage.path("secret");
        let (gate1, gate2) = (stage.gate("gate1"), stage.gate("gate2"));
        let script = format!(
            "echo before >> {log} && read x < {gate1} && mv {log} {log}.1 && ln -s {secret} {log} && read x < {gate2} && echo after >> {log}.1"
        );
        let mut command = Command::new("unshare");
        command
            .args(["--pid", "--fork", "--mount", "--propagation", "private"])
            .args(["sh", "-c", "umount -l /proc && exec \"$@\"", "sh"])
            .arg(envinit())
            .args(["--vm", "off", "--user", &APP.to_string(), "--stdout", &log])
            .args(["--", "sh", "-c", &script])
            .env("ENVINIT_LOG", "warn")
            .env("ATTACK_MARKER", MARKER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let run = Running::spawn(command, Mode::Pid1, None, super::common::RUN_TIMEOUT, None);
        let out = run_attack(run, &gate1, &gate2, || {}, Expect::Refused(CANNOT_READ));
        assert_one_refusal(&out, CANNOT_READ, &log);
        assert_eq!(
            stdout_lines(&out),
            ["before", "after"],
            "{}",
            out.describe()
        );
    }

    // -----------------------------------------------------------------------
    // The same in a real container: `docker run` with ENVINIT_USER and
    // ENVINIT_STDOUT, a FROM scratch image holding a root-only secret.

    /// A command with a deadline (`timeout`, coreutils): past it, the test
    /// fails with what was printed.
    fn bounded(program: &str, args: &[&str], seconds: u32) -> std::process::Output {
        let out = Command::new("timeout")
            .arg(seconds.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert_ne!(
            out.status.code(),
            Some(124),
            "`{program} {}` did not finish within {seconds} s:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn docker_ready() -> Option<std::path::PathBuf> {
        let binary = std::env::var_os("INIT_UNDER_TEST").map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/x86_64-unknown-linux-musl/release/envinit")
            },
            std::path::PathBuf::from,
        );
        let problem = if !binary.exists() {
            Some("no static binary: run ./build (./test does)".to_string())
        } else if !Path::new("/bin/busybox").exists() {
            Some("/bin/busybox missing (apt-get install busybox-static)".into())
        } else if !bounded("docker", &["info"], 60).status.success() {
            Some("no running Docker engine".into())
        } else {
            None
        };
        super::common::prerequisite("docker", problem).then_some(binary)
    }

    /// Removes the image and the container when the test ends, however.
    struct Cleanup {
        image: String,
        container: String,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = bounded("docker", &["rm", "-f", &self.container], 120);
            let _ = bounded("docker", &["rmi", "-f", &self.image], 120);
        }
    }

    #[test]
    fn docker_a_symlink_to_a_secret_in_the_image_never_reaches_docker_logs() {
        let Some(binary) = docker_ready() else {
            return;
        };
        let id = std::process::id();
        let cleanup = Cleanup {
            image: format!("envinit-attack-test:{id}"),
            container: format!("envinit-attack-test-{id}"),
        };
        let dir = TempDir::new("attack-docker");
        std::fs::copy(&binary, dir.path().join("envinit")).unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM scratch\n\
                 COPY busybox /bin/busybox\n\
                 RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                 RUN [\"/bin/sh\", \"-c\", \"echo {MARKER} > /secret && chmod 600 /secret && mkdir -p /var/log/app && chown 4242:4242 /var/log/app\"]\n\
                 COPY envinit /sbin/envinit\n\
                 ENTRYPOINT [\"/sbin/envinit\"]\n"
            ),
        )
        .unwrap();
        let built = bounded(
            "docker",
            &["build", "-q", "-t", &cleanup.image, dir.join("").as_str()],
            300,
        );
        assert!(
            built.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        // The app cannot read /secret itself (its cat fails); it renames its
        // log away and puts a symlink to /secret in its place. Whether
        // envinit sees the first file before the rename or only where it
        // went, "before" comes once; the secret never.
        let log = "/var/log/app/access.log";
        let script = format!(
            "echo before >> {log}; cat /secret; mv {log} {log}.1; ln -s /secret {log}; echo after >> {log}.1"
        );
        let ran = bounded(
            "docker",
            &[
                "run",
                "--name",
                &cleanup.container,
                "-e",
                "ENVINIT_USER=4242",
                "-e",
                &format!("ENVINIT_STDOUT={log}"),
                "-e",
                "ENVINIT_LOG=warn",
                &cleanup.image,
                "--",
                "sh",
                "-c",
                &script,
            ],
            120,
        );
        assert!(
            ran.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let logs = bounded("docker", &["logs", &cleanup.container], 60);
        let stdout = String::from_utf8_lossy(&logs.stdout);
        let stderr = String::from_utf8_lossy(&logs.stderr);
        assert!(
            !stdout.contains(MARKER) && !stderr.contains(MARKER),
            "the secret reached docker logs:\n{stdout}\n{stderr}"
        );
        assert_eq!(stdout, "before\nafter\n", "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(
            lines[0].contains("/secret") && lines[0].contains("Permission denied"),
            "the app's own cat fails: {stderr}"
        );
        assert!(
            lines[1].starts_with("envinit: warn: cannot read a --stdout/--stderr file")
                && lines[1].contains(&format!("path={log}"))
                && lines[1].contains("Permission denied"),
            "{stderr}"
        );
        drop(cleanup);
    }
}
