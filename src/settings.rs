//! Settings: everything envinit is told in this start, assembled once into
//! one [`Settings`] value from the command line and the `ENVINIT_*`
//! variables (docs/options.md).
//!
//! It only assembles. The words are read by [`crate::options`] (the option
//! table, the lexer, the variables); each phase owns its options type and
//! reads its own options ([`SuperviseSettings::from_options`] and the
//! like); what is left here are the rules that tie phases together: a
//! command is needed unless `--check` or `--probe` runs instead, and
//! `--probe` on the command line runs no command.
//!
//! No phase imports this module: it stands above all of them.

use std::ffi::OsString;

use crate::exit::{Failure, Remaps, parse_remap};
use crate::follow::FollowSettings;
use crate::launch::LaunchSettings;
use crate::lifecycle::SuperviseSettings;
use crate::logging::LogSettings;
use crate::options::{self, Given, Lexed, Section};
use crate::procs::{self, ProcsSettings};
use crate::reload::ReloadSettings;
use crate::render::RenderSettings;
use crate::vm::VmSettings;
use crate::wait::Checks;

/// Everything envinit does in this start.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The command and its arguments, byte-exact. Empty only with `--check`
    /// or `--probe`.
    pub command: Vec<OsString>,
    /// How the child is supervised.
    pub supervise: SuperviseSettings,
    /// Exit-code rewrites applied to the final code, first match wins.
    pub remap_exit: Remaps,
    /// Config files to render before the start.
    pub render: RenderSettings,
    /// What renders them again while the app runs: `None` (the defaults)
    /// unless one of its options is given, so a start without them carries
    /// no more than a pointer.
    pub reload: Option<Box<ReloadSettings>>,
    /// envinit's own log lines.
    pub log: LogSettings,
    /// `--user`, `--export-file-var`, `--wait`, `--probe`: only when one
    /// of them is given (a start without them carries no more than this).
    pub start_up: Option<Box<StartUp>>,
    /// `--stdout`, `--stderr`, `--log-prefix`: log files whose lines are
    /// copied to stdout/stderr (empty, and parsed not at all, without them).
    pub follow: FollowSettings,
    /// VM mode: when envinit is a machine's init (docs/vm.md).
    pub vm: VmSettings,
    /// `ENVINIT_*` variables that name no option (likely typos), to warn
    /// about once logging is set up.
    pub unknown_variables: Vec<String>,
}

/// The start-up options: `--user`, `--export-file-var`, `--wait`,
/// `--probe` and their timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct StartUp {
    /// `--user`, `--export-file-var`: what the app runs as and with.
    pub launch: LaunchSettings,
    /// `--wait`: dependencies awaited before the start.
    pub wait: Checks,
    /// `--probe`: check these once, report, run nothing.
    pub probe: Option<Checks>,
    /// `--procfile`, `--restart`, `--proc-*`: several processes (here, not
    /// in [`Settings`], so a start without options carries no more).
    pub procs: Option<ProcsSettings>,
}

/// The options of [`StartUp`] (with [`procs::OPTIONS`]).
const START_UP: &[&str] = &[
    "user",
    "export-file-var",
    "wait",
    "wait-timeout",
    "probe",
    "probe-timeout",
    "procfile",
    "restart",
    "proc-user",
    "proc-stop-signal",
    "proc-wait",
    "proc-signals",
    "proc-reload-signal",
    "proc-export-file-var",
    "proc-prefix",
];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Render and/or run, with these settings.
    Run(Box<Settings>),
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
}

/// Reads the settings from argument words (without argv\[0\], see
/// [`options::process_args`]) and `ENVINIT_*` variables (see
/// [`options::process_variables`]).
pub fn read(args: Vec<OsString>, variables: Vec<(OsString, OsString)>) -> Result<Request, Failure> {
    let (command_line, command) = match options::lex(args)? {
        Lexed::Help => return Ok(Request::Help),
        Lexed::Version => return Ok(Request::Version),
        Lexed::Run { options, command } => (options, command),
    };
    let variables = options::from_variables(variables)?;
    let mut given = Given::new(command_line, variables.options);

    let supervise = SuperviseSettings::from_options(&mut given)?;
    let remap_exit = match given.take("remap-exit") {
        Some(raw) => Remaps(raw.parse_each(parse_remap)?),
        None => Remaps::default(),
    };
    let render = RenderSettings::from_options(&mut given)?;
    let reload = match !given.is_empty() && given.in_section(Section::Reload) {
        true => Some(Box::new(ReloadSettings::from_options(&mut given)?)),
        false => None,
    };
    let vm = VmSettings::from_options(&mut given)?;
    let log = LogSettings::from_options(&mut given)?;
    let start_up = match given.any(START_UP) {
        true => Some(Box::new(start_up(&mut given, !command.is_empty())?)),
        false => None,
    };
    let follow = FollowSettings::from_options(&mut given)?;

    let probing = start_up.as_ref().is_some_and(|s| s.probe.is_some());
    let procfile =
        (start_up.as_ref().and_then(|s| s.procs.as_ref())).is_some_and(|p| p.procfile.is_some());
    if command.is_empty() && !render.check && !probing && !procfile {
        return Err(options::usage(
            "no command given: envinit [OPTIONS] [--] COMMAND [ARG...]".into(),
        ));
    }
    Ok(Request::Run(Box::new(Settings {
        command,
        supervise,
        remap_exit,
        render,
        reload,
        log,
        start_up,
        follow,
        vm,
        unknown_variables: variables.unknown,
    })))
}

/// `--user`, `--export-file-var`, `--wait`, `--wait-timeout`, `--probe`,
/// `--probe-timeout`. `--probe` from the command line runs no command;
/// `ENVINIT_PROBE` only applies when no command is given.
fn start_up(given: &mut Given, has_command: bool) -> Result<StartUp, Failure> {
    let launch = LaunchSettings::from_options(given)?;
    let wait = Checks::from_options(given, "wait", "wait-timeout", Checks::wait_default())?;
    let probe_cli = given.on_command_line("probe");
    let probe = Checks::from_options(given, "probe", "probe-timeout", Checks::probe_default())?;
    if probe_cli && has_command {
        return Err(options::usage(
            "--probe runs no command: give either --probe URL or a command".into(),
        ));
    }
    let probe = (!probe.targets.is_empty() && (probe_cli || !has_command)).then_some(probe);
    let procs = match given.any(procs::OPTIONS) {
        true => Some(ProcsSettings::from_options(given)?),
        false => None,
    };
    Ok(StartUp {
        launch,
        wait,
        probe,
        procs,
    })
}

impl Settings {
    /// `--user` and `--export-file-var`, when given.
    pub fn launch(&self) -> Option<&LaunchSettings> {
        self.start_up.as_deref().map(|s| &s.launch)
    }

    /// The `--export-file-var` names (none when not given).
    pub fn export_file_vars(&self) -> &[String] {
        self.launch().map_or(&[], |l| l.export_file_vars.as_slice())
    }

    /// `--wait`'s dependencies, when there are any.
    pub fn wait(&self) -> Option<&Checks> {
        self.start_up
            .as_deref()
            .map(|s| &s.wait)
            .filter(|w| !w.targets.is_empty())
    }

    /// `--procfile`, `--restart`, `--proc-*`, when given.
    pub fn procs(&self) -> Option<&ProcsSettings> {
        self.start_up.as_deref().and_then(|s| s.procs.as_ref())
    }

    /// `--wait-timeout` (also the bound on each `--proc-wait`).
    pub fn wait_timeout(&self) -> std::time::Duration {
        self.start_up
            .as_deref()
            .map_or(Checks::wait_default().timeout, |s| s.wait.timeout)
    }

    /// `--probe`'s URLs, when this start is a health check.
    pub fn probe(&self) -> Option<&Checks> {
        self.start_up.as_deref().and_then(|s| s.probe.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::exit;
    use crate::render::{IniTarget, PathPair};

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, Failure> {
        let env = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        match read(words(args), env)? {
            Request::Run(s) => Ok(*s),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn stops_at_the_first_non_option() {
        let s = run(&["echo", "-v", "-g", "hi"], &[]).unwrap();
        assert_eq!(s.command, words(&["echo", "-v", "-g", "hi"]));
        let s = run(&["--signal-group", "--", "--grace", "x"], &[]).unwrap();
        assert_eq!(s.command, words(&["--grace", "x"]));
        assert!(s.supervise.signal_group);
        let s = run(&["--grace", "3s", "sh", "--grace"], &[]).unwrap();
        assert_eq!(s.supervise.grace, Duration::from_secs(3));
        assert_eq!(s.command, words(&["sh", "--grace"]));
        let s = run(&["-", "x"], &[]).unwrap();
        assert_eq!(s.command, words(&["-", "x"]));
    }

    #[test]
    fn defaults() {
        let s = run(&["true"], &[]).unwrap();
        assert_eq!(s.supervise, SuperviseSettings::default());
        // 8 s: inside Docker's and Swarm's 10 s stop timeout, so envinit's
        // SIGKILL (and its line saying so) comes before the engine's.
        assert_eq!(s.supervise.grace, Duration::from_secs(8));
        assert_eq!(s.render, RenderSettings::default());
        assert_eq!(s.log, LogSettings::default());
        // A clean run prints nothing.
        assert_eq!(s.log.level, Some(tracing::Level::WARN));
        assert!(s.remap_exit.0.is_empty());
    }

    #[test]
    fn every_option_from_the_command_line() {
        let s = run(
            &[
                "--grace=2m",
                "--pre-stop-delay",
                "500ms",
                "--signal-group=no",
                "--rewrite",
                "TERM:QUIT",
                "--rewrite=SIGUSR1:none",
                "--remap-exit",
                "143",
                "--remap-exit=1:2",
                "-t",
                "a.tmpl:/etc/a",
                "-tb:/etc/b",
                "--template=c:d",
                "--ini",
                "PHP_INI_:/etc/php.ini",
                "--secrets-dir",
                "/s",
                "--check",
                "app",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.supervise.grace, Duration::from_secs(120));
        assert_eq!(s.supervise.pre_stop_delay, Duration::from_millis(500));
        assert!(!s.supervise.signal_group);
        assert_eq!(s.supervise.rewrites, vec![(15, Some(3)), (10, None)]);
        assert_eq!(s.remap_exit.0, vec![(143, 0), (1, 2)]);
        assert_eq!(s.render.templates.len(), 3);
        assert_eq!(
            s.render.templates[1],
            PathPair {
                src: "b".into(),
                dest: "/etc/b".into()
            }
        );
        assert_eq!(
            s.render.ini,
            vec![IniTarget {
                prefix: "PHP_INI_".into(),
                dest: "/etc/php.ini".into()
            }]
        );
        assert_eq!(s.render.secrets_dir, PathBuf::from("/s"));
        assert!(s.render.check);
        assert_eq!(s.command, words(&["app"]));
    }

    #[test]
    fn reload_options_from_the_command_line_and_the_environment() {
        use crate::reload::ReloadSettings;
        use std::time::Duration;
        // Not given: no settings carried (the defaults apply).
        let s = run(&["-t", "a:b", "true"], &[]).unwrap();
        assert_eq!(s.reload, None);
        let s = run(
            &[
                "--reload-signal",
                "USR1",
                "--app-reload-signal=SIGUSR2",
                "--watch",
                "--watch-limits",
                "30s",
                "-t",
                "a:b",
                "true",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            s.reload.as_deref(),
            Some(&ReloadSettings {
                signal: Some(10),
                app_signal: Some(12),
                watch: true,
                watch_limits: Some(Duration::from_secs(30)),
            })
        );
        let s = run(
            &["true"],
            &[
                ("ENVINIT_RELOAD_SIGNAL", "none"),
                ("ENVINIT_APP_RELOAD_SIGNAL", "none"),
                ("ENVINIT_WATCH", "yes"),
                ("ENVINIT_WATCH_LIMITS", "0"),
            ],
        )
        .unwrap();
        let r = s.reload.unwrap();
        assert_eq!(
            (r.signal, r.app_signal, r.watch, r.watch_limits),
            (None, Some(0), true, None)
        );
        // --diff implies --check (so no command is needed).
        let s = run(&["--diff"], &[]).unwrap();
        assert!(s.render.check && s.render.diff);
        let bad = run(&["--reload-signal", "BOGUS", "true"], &[]).unwrap_err();
        assert_eq!(bad.code, exit::USAGE);
        let bad = run(&["true"], &[("ENVINIT_WATCH_LIMITS", "soon")]).unwrap_err();
        assert_eq!(bad.code, exit::CONFIG);
    }

    #[test]
    fn log_files_from_the_command_line_and_the_environment() {
        let s = run(&["true"], &[]).unwrap();
        assert!(s.follow.is_empty());
        let s = run(
            &[
                "--stdout",
                "/var/log/a.log",
                "--stdout=b.log",
                "--stderr",
                "/e.log",
                "--log-prefix",
                "app",
            ],
            &[("ENVINIT_STDOUT", "/ignored.log")],
        )
        .unwrap();
        assert_eq!(
            s.follow.stdout,
            vec![PathBuf::from("/var/log/a.log"), PathBuf::from("b.log")]
        );
        assert_eq!(s.follow.stderr, vec![PathBuf::from("/e.log")]);
        assert!(s.follow.prefix);
        let s = run(
            &["app"],
            &[
                ("ENVINIT_STDOUT", "/a.log, /b.log"),
                ("ENVINIT_STDERR", "/c.log"),
                ("ENVINIT_LOG_PREFIX", "yes"),
            ],
        )
        .unwrap();
        assert_eq!(s.follow.stdout.len(), 2);
        assert_eq!(s.follow.stderr, vec![PathBuf::from("/c.log")]);
        assert!(s.follow.prefix);
        assert!(s.unknown_variables.is_empty());
        let e = run(&["--stdout", "/var/log/", "app"], &[]).unwrap_err();
        assert_eq!(e.code, exit::USAGE);
        assert!(e.message().contains("--stdout"), "{e}");
        let e = run(&["app"], &[("ENVINIT_STDERR", "..")]).unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert!(e.message().contains("ENVINIT_STDERR"), "{e}");
    }

    #[test]
    fn every_option_from_the_environment() {
        let s = run(
            &["app"],
            &[
                ("ENVINIT_GRACE", "30s"),
                ("ENVINIT_PRE_STOP_DELAY", "2"),
                ("ENVINIT_SIGNAL_GROUP", "on"),
                ("ENVINIT_REWRITE", "TERM:QUIT, INT:none"),
                ("ENVINIT_REMAP_EXIT", "143"),
                ("ENVINIT_TEMPLATE", "a:b, c:d,"),
                ("ENVINIT_INI", "X_:/x.ini"),
                ("ENVINIT_SECRETS_DIR", "/sec"),
                ("ENVINIT_CHECK", "0"),
                ("ENVINIT_LOG", "debug"),
                ("ENVINIT_LOG_FORMAT", "json"),
            ],
        )
        .unwrap();
        assert_eq!(s.supervise.grace, Duration::from_secs(30));
        assert_eq!(s.supervise.pre_stop_delay, Duration::from_secs(2));
        assert!(s.supervise.signal_group);
        assert_eq!(s.supervise.rewrites, vec![(15, Some(3)), (2, None)]);
        assert_eq!(s.remap_exit.0, vec![(143, 0)]);
        assert_eq!(s.render.templates.len(), 2);
        assert_eq!(s.render.ini[0].prefix, "X_");
        assert_eq!(s.render.secrets_dir, PathBuf::from("/sec"));
        assert!(!s.render.check);
        assert_eq!(
            s.log,
            LogSettings {
                level: Some(tracing::Level::DEBUG),
                json: true
            }
        );
    }

    #[test]
    fn unknown_variables_are_kept_for_a_warning() {
        let s = run(&["app"], &[("ENVINIT_GRAC", "5s"), ("ENVINIT_GRACE", "1s")]).unwrap();
        assert_eq!(s.unknown_variables, vec!["ENVINIT_GRAC".to_string()]);
        assert_eq!(s.supervise.grace, Duration::from_secs(1));
        let s = run(&["app"], &[("ENVINIT_LOG", "warn")]).unwrap();
        assert!(s.unknown_variables.is_empty());
    }

    #[test]
    fn the_command_line_wins() {
        let env = [
            ("ENVINIT_GRACE", "30s"),
            ("ENVINIT_REWRITE", "TERM:QUIT"),
            ("ENVINIT_SIGNAL_GROUP", "1"),
        ];
        let s = run(
            &[
                "--grace",
                "1s",
                "--rewrite",
                "INT:TERM",
                "--signal-group=off",
                "app",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(s.supervise.grace, Duration::from_secs(1));
        assert_eq!(s.supervise.rewrites, vec![(2, Some(15))]);
        assert!(!s.supervise.signal_group);
    }

    #[test]
    fn zero_and_false_mean_off() {
        for off in ["0", "false", "FALSE", "no", "off"] {
            let s = run(&["app"], &[("ENVINIT_SIGNAL_GROUP", off)]).unwrap();
            assert!(!s.supervise.signal_group, "{off}");
        }
        for on in ["1", "true", "Yes", "ON"] {
            let s = run(&["app"], &[("ENVINIT_SIGNAL_GROUP", on)]).unwrap();
            assert!(s.supervise.signal_group, "{on}");
        }
    }

    #[test]
    fn usage_errors_exit_64_and_config_errors_78() {
        for args in [
            &["--grace"][..],
            &["--grace", "soon", "app"],
            &["--nope", "app"],
            &["-x", "app"],
            &["--rewrite", "TERM", "app"],
            &["--rewrite", "TERM:BOGUS", "app"],
            &["--remap-exit", "300", "app"],
            &["--template", "nodest", "app"],
            &["--signal-group=maybe", "app"],
            &[],
            &["--grace", "1s"],
        ] {
            let err = run(args, &[]).unwrap_err();
            assert_eq!(err.code, 64, "{args:?}: {err}");
        }
        for env in [
            ("ENVINIT_GRACE", "soon"),
            ("ENVINIT_SIGNAL_GROUP", "maybe"),
            ("ENVINIT_LOG", "loud"),
            ("ENVINIT_LOG_FORMAT", "xml"),
            ("ENVINIT_REWRITE", "TERM"),
        ] {
            let err = run(&["app"], &[env]).unwrap_err();
            assert_eq!(err.code, 78, "{env:?}: {err}");
            assert!(err.message().starts_with(env.0), "{err}");
        }
    }

    #[test]
    fn start_up_options() {
        let s = run(
            &[
                "-u",
                "app:staff",
                "--export-file-var",
                "DB_PASSWORD",
                "--export-file-var=API_TOKEN",
                "--export-file-var",
                "DB_PASSWORD",
                "--wait",
                "tcp://db:5432",
                "--wait=file:///x",
                "--wait-timeout",
                "5s",
                "app",
            ],
            &[("ENVINIT_WAIT", "tcp://ignored:1")],
        )
        .unwrap()
        .start_up
        .unwrap();
        assert_eq!(s.launch.user.as_deref(), Some("app:staff"));
        assert_eq!(s.launch.export_file_vars, ["DB_PASSWORD", "API_TOKEN"]);
        let urls: Vec<_> = s.wait.targets.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(urls, ["tcp://db:5432", "file:///x"]);
        assert_eq!(s.wait.timeout, Duration::from_secs(5));
        assert_eq!(s.probe, None);

        let env = [
            ("ENVINIT_USER", "1000"),
            ("ENVINIT_WAIT", "tcp://a:1, http://b/"),
            ("ENVINIT_WAIT_TIMEOUT", "2m"),
            ("ENVINIT_EXPORT_FILE_VAR", "MYSQL_PASSWORD, API_TOKEN,"),
            ("ENVINIT_PROBE", "tcp://a:1"),
            ("ENVINIT_PROBE_TIMEOUT", "300ms"),
        ];
        let s = run(&["app"], &env).unwrap();
        assert!(s.unknown_variables.is_empty());
        let s = s.start_up.unwrap();
        assert_eq!(s.launch.user.as_deref(), Some("1000"));
        assert_eq!(s.launch.export_file_vars, ["MYSQL_PASSWORD", "API_TOKEN"]);
        assert_eq!(s.wait.targets.len(), 2);
        assert_eq!(s.wait.timeout, Duration::from_secs(120));
        assert_eq!(s.probe, None, "ENVINIT_PROBE does not stop a command");
        let s = run(&[], &env).unwrap().start_up.unwrap();
        let probe = s.probe.unwrap();
        assert_eq!(probe.targets[0].url, "tcp://a:1");
        assert_eq!(probe.timeout, Duration::from_millis(300));
        let s = run(&["--probe", "http://h:8080/health"], &[])
            .unwrap()
            .start_up
            .unwrap();
        assert_eq!(s.probe.unwrap().timeout, Duration::from_secs(2));
        assert_eq!(s.wait.timeout, Duration::from_secs(60));

        assert_eq!(run(&["app"], &[]).unwrap().start_up, None);
        for args in [
            &["--wait", "db:5432", "app"][..],
            &["--probe", "tcp://a:1", "app"],
            &["--wait-timeout", "soon", "app"],
            &["-u"],
        ] {
            assert_eq!(run(args, &[]).unwrap_err().code, 64, "{args:?}");
        }
        let e = run(&["app"], &[("ENVINIT_WAIT", "https://x/")]).unwrap_err();
        assert_eq!(e.code, 78);
        assert!(e.message().starts_with("ENVINIT_WAIT: "), "{e}");
    }

    #[test]
    fn export_file_var_names_are_checked_and_the_old_boolean_says_what_replaced_it() {
        // The command line replaces the variable's list.
        let s = run(
            &["--export-file-var", "A", "app"],
            &[("ENVINIT_EXPORT_FILE_VAR", "B")],
        )
        .unwrap();
        assert_eq!(s.start_up.unwrap().launch.export_file_vars, ["A"]);
        for (args, why) in [
            (
                &["--export-file-var", "DB_PASSWORD_FILE", "app"][..],
                "drop _FILE",
            ),
            (
                &["--export-file-var", "db-password", "app"],
                "not a variable name",
            ),
            (
                &["--export-file-var=", "app"],
                "give the name of a variable",
            ),
            (
                &["--export-file-var", "MYSQL_*", "app"],
                "patterns are not supported",
            ),
            (&["--export-file-var"], "needs a value"),
        ] {
            let e = run(args, &[]).unwrap_err();
            assert_eq!(e.code, 64, "{args:?}: {e}");
            assert!(e.message().contains(why), "{args:?}: {e}");
            assert!(!e.message().contains('\n'));
        }
        let e = run(&["app"], &[("ENVINIT_EXPORT_FILE_VAR", "A, B_FILE")]).unwrap_err();
        assert_eq!(e.code, 78, "{e}");
        assert!(
            e.message()
                .starts_with("ENVINIT_EXPORT_FILE_VAR: \"B_FILE\": drop _FILE"),
            "{e}"
        );

        for old in [
            "--export-file-vars",
            "--export-file-vars=1",
            "--export-file-vars=0",
        ] {
            let e = run(&[old, "app"], &[]).unwrap_err();
            assert_eq!(e.code, 64, "{old}: {e}");
            assert_eq!(
                e.message(),
                "--export-file-vars was replaced by --export-file-var NAME (repeatable): name the variables to export, e.g. --export-file-var MYSQL_PASSWORD (see envinit --help)"
            );
        }
        let e = run(&["app"], &[("ENVINIT_EXPORT_FILE_VARS", "1")]).unwrap_err();
        assert_eq!(e.code, 78, "{e}");
        assert_eq!(
            e.message(),
            "ENVINIT_EXPORT_FILE_VARS was replaced by ENVINIT_EXPORT_FILE_VAR (a list): name the variables to export, e.g. ENVINIT_EXPORT_FILE_VAR=MYSQL_PASSWORD,API_TOKEN"
        );
    }

    #[test]
    fn rotate_wait_defaults_to_5s_and_takes_a_duration() {
        let s = run(&["--stdout", "/a.log", "app"], &[]).unwrap();
        assert_eq!(s.follow.rotate_wait_ms, 5000);
        let s = run(&["--rotate-wait", "0", "--stdout", "/a.log", "app"], &[]).unwrap();
        assert_eq!(s.follow.rotate_wait_ms, 0);
        let s = run(
            &["--stdout", "/a.log", "app"],
            &[("ENVINIT_ROTATE_WAIT", "500ms")],
        )
        .unwrap();
        assert_eq!(s.follow.rotate_wait_ms, 500);
        assert!(s.unknown_variables.is_empty());
        let e = run(&["--rotate-wait", "soon", "app"], &[]).unwrap_err();
        assert_eq!(e.code, exit::USAGE);
        assert!(e.message().contains("--rotate-wait"), "{e}");
    }

    #[test]
    fn every_option_of_several_processes_is_a_start_up_option() {
        for long in procs::OPTIONS {
            assert!(START_UP.contains(long), "{long}");
        }
        let s = run(&["--procfile", "/P"], &[]).unwrap();
        assert_eq!(
            s.procs().and_then(|p| p.procfile.as_deref()),
            Some(std::path::Path::new("/P"))
        );
        assert!(s.command.is_empty(), "a Procfile needs no command");
        let s = run(&["app"], &[("ENVINIT_RESTART", "main")]).unwrap();
        assert_eq!(s.procs().map(|p| p.each.len()), Some(1));
        assert_eq!(run(&["app"], &[]).unwrap().procs(), None);
    }

    #[test]
    fn check_needs_no_command() {
        let s = run(&["--check"], &[]).unwrap();
        assert!(s.render.check && s.command.is_empty());
    }

    #[test]
    fn help_and_version() {
        assert_eq!(read(words(&["-h"]), vec![]), Ok(Request::Help));
        assert_eq!(read(words(&["--help", "x"]), vec![]), Ok(Request::Help));
        assert_eq!(read(words(&["-V"]), vec![]), Ok(Request::Version));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let s = run(&["app"], &[("ENVINIT_GRACE", ""), ("PATH", "/bin")]).unwrap();
        assert_eq!(s.supervise, SuperviseSettings::default());
    }

    #[test]
    fn remaps_apply_to_the_final_code() {
        let s = run(
            &["--remap-exit", "143", "--remap-exit", "143:9", "app"],
            &[],
        )
        .unwrap();
        assert_eq!(s.remap_exit.apply(143), 0);
        assert_eq!(s.remap_exit.apply(1), 1);
    }
}
