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
