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
// Render destinations, and the files root reads for templates (issue 13,
// item 2). envinit renders as root before it starts the app as `--user`:
// DEST's directories, the directories it creates, the templates, the
// secrets and the `X_FILE` files are resolved component by component
// (src/appfs/chase.rs), and a step from a directory or symlink of the user
// to something of another owner is refused, so a symlink the user planted
// cannot point root's write, chown or read anywhere else.

mod render_paths {
    use super::common::{Finished, Spec, TempDir, have_unshare};
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
    use std::path::{Path, PathBuf};

    const USER: u32 = 4242;

    /// What root's files hold: never to be seen in a rendered file or a
    /// message.
    const ROOT_ONLY: &str = "root-only-content";

    /// A root-owned directory (0755) holding `rootdir/` (root's: `app.ini`
    /// and a 0600 `secret`), `u/` (the user's) and `tmpl/` (root's
    /// templates).
    struct Scene(TempDir);

    impl Scene {
        fn new(name: &str) -> Scene {
            let scene = Scene(TempDir::new(name));
            fs::set_permissions(scene.0.path(), fs::Permissions::from_mode(0o755)).unwrap();
            fs::create_dir(scene.path("rootdir")).unwrap();
            fs::write(scene.path("rootdir/app.ini"), "orig\n").unwrap();
            fs::write(scene.path("rootdir/secret"), ROOT_ONLY).unwrap();
            fs::set_permissions(
                scene.path("rootdir/secret"),
                fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            fs::create_dir(scene.path("tmpl")).unwrap();
            scene.user_dir("u");
            scene
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.0.path().join(rel)
        }

        fn s(&self, rel: &str) -> String {
            self.0.join(rel)
        }

        /// Makes `rel` (and its missing parents) as the user's.
        fn user_dir(&self, rel: &str) {
            fs::create_dir_all(self.path(rel)).unwrap();
            lchown(self.path(rel), Some(USER), Some(USER)).unwrap();
        }

        /// Plants the user's symlink `rel` -> `target`.
        fn user_link(&self, target: impl AsRef<Path>, rel: &str) {
            symlink(target, self.path(rel)).unwrap();
            lchown(self.path(rel), Some(USER), Some(USER)).unwrap();
        }

        /// Writes the root-owned template `tmpl/NAME`; returns its path.
        fn template(&self, name: &str, text: &str) -> String {
            fs::write(self.path(&format!("tmpl/{name}")), text).unwrap();
            self.s(&format!("tmpl/{name}"))
        }

        /// Root's directory is as it was: the same two files, root's, and
        /// `app.ini` unchanged (no staged file left, nothing chowned).
        fn assert_root_untouched(&self) {
            let mut names: Vec<_> = fs::read_dir(self.path("rootdir"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["app.ini", "secret"]);
            let meta = fs::metadata(self.path("rootdir")).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 0));
            for name in ["app.ini", "secret"] {
                let meta = fs::metadata(self.path(&format!("rootdir/{name}"))).unwrap();
                assert_eq!((meta.uid(), meta.gid()), (0, 0), "rootdir/{name}");
            }
            assert_eq!(
                fs::read_to_string(self.path("rootdir/app.ini")).unwrap(),
                "orig\n"
            );
        }
    }

    /// envinit as PID 1 with `--user 4242`, these options, and `echo
    /// started` as the app; with `check`, the same options with `--check`
    /// (not PID 1: nothing is started).
    fn envinit(options: &[String], env: &[(&str, &str)], check: bool) -> Finished {
        let mut args: Vec<String> = vec!["--user".into(), USER.to_string()];
        args.extend(options.iter().cloned());
        let spec = if check {
            args.insert(0, "--check".into());
            Spec::direct(args)
        } else {
            args.extend(["--".into(), "echo".into(), "started".into()]);
            Spec::pid1(args)
        };
        env.iter().fold(spec, |spec, (k, v)| spec.env(k, v)).run()
    }

    fn pair(src: &str, dest: &str) -> [String; 2] {
        ["-t".into(), format!("{src}:{dest}")]
    }

    /// Exit 78, the app not started, root's secret nowhere, and exactly one
    /// error line saying "refused", which contains `wanted`; that line.
    fn assert_refused(out: &Finished, wanted: &str) -> String {
        out.assert_code(78);
        assert!(!out.out().contains("started"), "{}", out.describe());
        assert!(!out.out().contains(ROOT_ONLY) && !out.err().contains(ROOT_ONLY));
        let lines: Vec<String> = out
            .err_lines()
            .into_iter()
            .filter(|l| l.contains("refused"))
            .collect();
        assert_eq!(lines.len(), 1, "{}", out.describe());
        assert!(
            lines[0].starts_with("envinit: error: ") && lines[0].contains(wanted),
            "wanted {wanted:?} in\n{}",
            out.describe()
        );
        lines[0].clone()
    }

    /// Issue 13, item 2, as the issue gives it (the symlink made by root,
    /// so root's in the user's directory), and with the user's own symlink.
    #[test]
    fn the_issues_reproduction_leaves_the_root_directory_alone() {
        if !have_unshare() {
            return;
        }
        for users_link in [false, true] {
            let scene = Scene::new("repro");
            scene.user_dir("cfg");
            if users_link {
                scene.user_link(scene.path("rootdir"), "cfg/conf");
            } else {
                symlink(scene.path("rootdir"), scene.path("cfg/conf")).unwrap();
            }
            let tmpl = scene.template("app.ini.tmpl", "name = {{ NAME }}\n");
            let dest = scene.s("cfg/conf/app.ini");
            let wanted = if users_link {
                format!(
                    "envinit: error: {dest}: refused: {} is a symlink owned by uid 4242 pointing to {} (through /, owned by uid 0): an unsafe path (uid 4242 could have planted it): write to a path whose directories belong to root or to that one user",
                    scene.s("cfg/conf"),
                    scene.s("rootdir")
                )
            } else {
                format!(
                    "envinit: error: {dest}: refused: {} is a symlink owned by uid 0 in {}, a directory owned by uid 4242: an unsafe path (uid 4242 could have planted it): write to a path whose directories belong to root or to that one user",
                    scene.s("cfg/conf"),
                    scene.s("cfg")
                )
            };
            for check in [false, true] {
                let out = envinit(&pair(&tmpl, &dest), &[("NAME", "x")], check);
                assert_eq!(assert_refused(&out, ""), wanted);
                scene.assert_root_untouched();
            }
        }
    }

    /// The user replaces each directory of DEST in turn with a symlink to
    /// root's directory (absolute and relative targets): each is refused,
    /// naming that component.
    #[test]
    fn a_symlink_planted_at_any_directory_of_a_dest_is_refused() {
        if !have_unshare() {
            return;
        }
        for planted in ["u/a", "u/a/b"] {
            for relative in [false, true] {
                let scene = Scene::new("each");
                scene.user_dir(&planted[..planted.rfind('/').unwrap()]);
                let target = if relative {
                    let ups = planted.matches('/').count();
                    PathBuf::from(format!("{}rootdir", "../".repeat(ups)))
                } else {
                    scene.path("rootdir")
                };
                scene.user_link(&target, planted);
                if planted == "u/a" {
                    // Whatever the link's target holds, it is not reached.
                    fs::create_dir(scene.path("rootdir/b")).unwrap();
                }
                let tmpl = scene.template("app.ini.tmpl", "name = {{ NAME }}\n");
                let dest = scene.s("u/a/b/app.ini");
                // An absolute target is refused at its first step (to /),
                // a relative one at the `..` out of the user's directories
                // (its first step for u/a, its second for u/a/b); the
                // message names the symlink either way.
                let link = format!(
                    "{} is a symlink owned by uid 4242 pointing to",
                    scene.s(planted)
                );
                let wanted = match (relative, planted) {
                    (false, _) => format!(
                        "{dest}: refused: {link} {} (through /, owned by uid 0)",
                        target.display()
                    ),
                    (true, "u/a") => format!(
                        "{dest}: refused: {link} ../rootdir (through {}, owned by uid 0)",
                        scene.0.path().display()
                    ),
                    (true, _) => format!(
                        "{dest}: refused: {}/.. leads from a directory owned by uid 4242 to {}, owned by uid 0, after the symlink {} -> ../../rootdir (owned by uid 4242)",
                        scene.s("u"),
                        scene.0.path().display(),
                        scene.s(planted),
                    ),
                };
                for check in [false, true] {
                    let out = envinit(&pair(&tmpl, &dest), &[("NAME", "x")], check);
                    assert_refused(&out, &wanted);
                    if planted == "u/a" {
                        fs::remove_dir(scene.path("rootdir/b")).unwrap();
                        scene.assert_root_untouched();
                        fs::create_dir(scene.path("rootdir/b")).unwrap();
                    } else {
                        scene.assert_root_untouched();
                    }
                }
            }
        }
    }

    /// The user plants a symlink where envinit would create a directory for
    /// DEST: it is walked, not created over, and refused.
    #[test]
    fn a_symlink_planted_where_a_directory_would_be_made_is_refused() {
        if !have_unshare() {
            return;
        }
        let scene = Scene::new("mkdir");
        scene.user_link(scene.path("rootdir"), "u/new");
        let tmpl = scene.template("app.ini.tmpl", "name = {{ NAME }}\n");
        let dest = scene.s("u/new/deeper/app.ini");
        for check in [false, true] {
            let out = envinit(&pair(&tmpl, &dest), &[("NAME", "x")], check);
            assert_refused(
                &out,
                &format!(
                    "{dest}: refused: {} is a symlink owned by uid 4242",
                    scene.s("u/new")
                ),
            );
            scene.assert_root_untouched();
        }
    }

    /// The user points a secret, an `X_FILE`, a template or an entry of a
    /// template directory at root's 0600 file: envinit would read it as
    /// root and write it into a file the user owns. Each is refused, the
    /// content appears nowhere, and the rendered file is not written.
    #[test]
    fn a_symlink_planted_at_a_file_root_reads_leaks_nothing() {
        if !have_unshare() {
            return;
        }
        let scene = Scene::new("reads");
        scene.user_dir("u/secrets");
        scene.user_dir("u/tdir");
        scene.user_dir("out");
        let secret = scene.path("rootdir/secret");
        scene.user_link(&secret, "u/secrets/db");
        scene.user_link(&secret, "u/pw");
        scene.user_link("../rootdir/secret", "u/relpw");
        scene.user_link(&secret, "u/leak.conf.tmpl");
        scene.user_link(&secret, "u/tdir/leak.conf");
        let dest = scene.s("out/app.conf");
        let secrets_tmpl = scene.template("secret.tmpl", "pw = {{ secrets.db }}\n");
        let var_tmpl = scene.template("var.tmpl", "pw = {{ PW }}\n");
        let owners = "PW_FILE names a file that is refused: a symlink owned by uid 4242 leads to a directory owned by uid 0: an unsafe path (uid 4242 could have planted it): point PW_FILE at a file whose directories belong to root or to that one user";
        // (options, environment, the message wanted)
        type Case<'a> = (Vec<String>, Vec<(&'a str, String)>, String);
        let cases: Vec<Case> = vec![
            (
                [
                    pair(&secrets_tmpl, &dest).to_vec(),
                    vec!["--secrets-dir".into(), scene.s("u/secrets")],
                ]
                .concat(),
                vec![],
                format!(
                    "secret db in {} is refused: {} is a symlink owned by uid 4242 pointing to {}",
                    scene.s("u/secrets"),
                    scene.s("u/secrets/db"),
                    secret.display()
                ),
            ),
            (
                pair(&var_tmpl, &dest).to_vec(),
                vec![("PW_FILE", scene.s("u/pw"))],
                owners.into(),
            ),
            (
                pair(&var_tmpl, &dest).to_vec(),
                vec![("PW_FILE", scene.s("u/relpw"))],
                owners.into(),
            ),
            (
                pair(&scene.s("u/leak.conf.tmpl"), &dest).to_vec(),
                vec![],
                format!(
                    "{}: refused: {} is a symlink owned by uid 4242 pointing to {}",
                    scene.s("u/leak.conf.tmpl"),
                    scene.s("u/leak.conf.tmpl"),
                    secret.display()
                ),
            ),
            (
                pair(&scene.s("u/tdir"), &scene.s("out")).to_vec(),
                vec![],
                format!(
                    "{}: refused: {} is a symlink owned by uid 4242 pointing to {}",
                    scene.s("u/tdir/leak.conf"),
                    scene.s("u/tdir/leak.conf"),
                    secret.display()
                ),
            ),
        ];
        for (options, env, wanted) in &cases {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            for check in [false, true] {
                let out = envinit(options, &env, check);
                let line = assert_refused(&out, wanted);
                // An X_FILE's path is a value: not in the message.
                assert!(
                    !line.contains("/u/pw") && !line.contains("/u/relpw"),
                    "{line}"
                );
                assert_eq!(fs::read_dir(scene.path("out")).unwrap().count(), 0);
                scene.assert_root_untouched();
            }
        }
    }

    /// What the rule allows still works as before: DESTs under root's
    /// directories and under the user's own (through the user's relative
    /// symlinks too), directories created for the user, a symlink at the
    /// last component replaced, secrets through root's symlinks (a
    /// Kubernetes secret volume's layout), an `X_FILE` of the user's in the
    /// user's directory.
    #[test]
    fn paths_the_rule_allows_still_render() {
        if !have_unshare() {
            return;
        }
        let scene = Scene::new("allowed");
        fs::create_dir(scene.path("rootconf")).unwrap();
        scene.user_dir("u/a/b");
        scene.user_dir("u/a");
        scene.user_link("a", "u/link");
        scene.user_link(scene.path("rootdir/app.ini"), "u/a/b/last.ini");
        // /run/secrets as Kubernetes lays it out: all root's.
        fs::create_dir_all(scene.path("secrets/..2024_01_01")).unwrap();
        fs::write(scene.path("secrets/..2024_01_01/db"), "hunter2\n").unwrap();
        symlink("..2024_01_01", scene.path("secrets/..data")).unwrap();
        symlink("..data/db", scene.path("secrets/db")).unwrap();
        fs::write(scene.path("u/pw"), "users-own\n").unwrap();
        lchown(scene.path("u/pw"), Some(USER), Some(USER)).unwrap();
        let tmpl = scene.template("app.ini.tmpl", "db = {{ secrets.db }}\npw = {{ PW }}\n");
        let dests = [
            "rootconf/app.ini",
            "etc/app/app.ini",
            "u/a/b/app.ini",
            "u/link/b/via-link.ini",
            "u/new/deeper/app.ini",
            "u/a/b/last.ini",
        ];
        let mut options = vec!["--secrets-dir".to_string(), scene.s("secrets")];
        for dest in dests {
            options.extend(pair(&tmpl, &scene.s(dest)));
        }
        let env = [("PW_FILE", scene.s("u/pw"))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = envinit(&options, &env, true);
        out.assert_code(0);
        assert!(!scene.path("u/new").exists(), "--check writes nothing");
        let out = envinit(&options, &env, false);
        out.assert_code(0);
        assert_eq!(out.out(), "started\n", "{}", out.describe());
        for dest in dests {
            let path = scene.path(dest);
            let meta = fs::symlink_metadata(&path).unwrap();
            assert!(meta.is_file(), "{dest}");
            assert_eq!((meta.uid(), meta.gid()), (USER, USER), "{dest}");
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                "db = hunter2\npw = users-own\n",
                "{dest}"
            );
        }
        for made in ["etc", "etc/app", "u/new", "u/new/deeper"] {
            let meta = fs::metadata(scene.path(made)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (USER, USER), "{made}");
        }
        for kept in ["rootconf", "secrets"] {
            assert_eq!(fs::metadata(scene.path(kept)).unwrap().uid(), 0, "{kept}");
        }
        assert_eq!(fs::metadata(scene.0.path()).unwrap().uid(), 0);
        scene.assert_root_untouched();
    }
}

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

    /// A command with a deadline (tests/common's run_for): past it, its
    /// process group is killed and the test fails with what was printed.
    fn bounded(program: &str, args: &[&str], seconds: u64) -> super::common::Finished {
        super::common::run_for(
            Command::new(program).args(args),
            std::time::Duration::from_secs(seconds),
        )
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
        } else {
            super::common::probe("docker", &["info"])
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
            // Never a panic here (the test may be unwinding already).
            let _ = std::panic::catch_unwind(|| {
                let _ = bounded("docker", &["rm", "-f", &self.container], 120);
                let _ = bounded("docker", &["rmi", "-f", &self.image], 120);
            });
        }
    }

    #[test]
    fn docker_a_symlink_to_a_secret_in_the_image_never_reaches_docker_logs() {
        let Some(binary) = docker_ready() else {
            return;
        };
        // This run's names (tests/engines): a killed run's are swept.
        let id = super::common::run_id();
        let cleanup = Cleanup {
            image: format!("envinit-attack-test:{id}"),
            container: format!("envinit-attack-test-{id}"),
        };
        let label = format!("envinit.test.run={id}");
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
                "--label",
                &label,
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
