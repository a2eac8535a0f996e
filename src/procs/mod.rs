//! Procs: several processes in one container (`--procfile FILE`,
//! docs/options.md "Several processes"), for images that ran supervisord,
//! s6-overlay or multirun: nginx, php-fpm and cron side by side.
//!
//! It owns the options of the feature ([`ProcsSettings`]: the Procfile,
//! `--restart`, the per-process `--proc-KEY NAME=VALUE` options,
//! `--proc-prefix`), the Procfile format ([`procfile`], pure), and the
//! [`Plan`]: for each process, made before anything starts, its command,
//! user, environment, dependencies and [`Member`] row (stop signal,
//! routing, restart), which the lifecycle's table ([`crate::lifecycle::team`])
//! decides over and the supervisor starts. It also owns the processes'
//! prefixed output ([`output`], `--proc-prefix`).
//!
//! Promises:
//! - Nothing here runs, reads or allocates unless one of its options is
//!   given: a start with one command takes the one-process path as before.
//! - Every problem is found before anything is written or started: a bad
//!   Procfile line (`FILE:LINE: what and how to fix`), an option naming no
//!   process, an unknown user: exit 78 (64 for a bad command line).
//! - The command after `--` is one more process, named `main`, started
//!   last (stopped first). `--user` is every process's user unless
//!   `--proc-user` names another (`root` for masters that drop privileges
//!   themselves); `--export-file-var` applies to every process; a
//!   Procfile's leading `NAME=VALUE` words set variables for that process
//!   only.
//! - The Procfile is read as root reads the app's paths (through
//!   [`crate::appfs::chase`]), at most [`MAX_PROCFILE`] bytes.

pub mod output;
pub mod procfile;

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::appfs::chase;
use crate::exit::{self, Failure};
use crate::launch::{self, Launch};
use crate::lifecycle::team::Member;
use crate::options::{Given, Opt, Raw, Source, parse_bool};
use crate::signals;
use crate::user::Identity;
use crate::wait::{self, Target};

pub use output::Outputs;

/// The largest Procfile read.
pub const MAX_PROCFILE: u64 = 64 << 10;

/// The name of the process the command after `--` becomes.
pub const MAIN: &str = "main";

/// The options of this feature; any of them makes a start take the
/// several-process path.
pub const OPTIONS: &[&str] = &[
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

/// The per-process options given for one process: `--restart NAME` and
/// the `--proc-KEY NAME=VALUE` options naming it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForProc {
    /// The process named.
    pub name: String,
    /// `--restart`.
    pub restart: bool,
    /// `--proc-user`: `USER[:GROUP]`.
    pub user: Option<String>,
    /// `--proc-stop-signal`.
    pub stop_signal: Option<i32>,
    /// `--proc-signals`: `(received, sent)` pairs.
    pub signals: Option<Vec<(i32, i32)>>,
    /// `--proc-wait`.
    pub waits: Vec<Target>,
    /// `--proc-reload-signal` (0: none).
    pub reload_signal: Option<i32>,
    /// `--proc-export-file-var`: the `--export-file-var` variables this
    /// process gets (once any process is named, the others get none).
    pub exports: Option<Vec<String>>,
    /// The first option that named it and where it was given, for the
    /// error when no process has that name.
    from: Option<(&'static Opt, Source)>,
    /// Where `--proc-export-file-var` named it, for the error when a
    /// variable it names is not exported.
    exports_from: Option<(&'static Opt, Source)>,
}

/// `--procfile`, `--restart`, `--proc-*` (docs/options.md).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcsSettings {
    /// `--procfile FILE`.
    pub procfile: Option<PathBuf>,
    /// The per-process options, one entry per process named.
    pub each: Vec<ForProc>,
    /// `--proc-prefix`: each line of the processes' output prefixed with
    /// the process's name.
    pub prefix: bool,
}

/// The per-process options, in the order [`ProcsSettings::from_options`]
/// reads them (`--restart` first: it takes a name alone).
const PER_PROCESS: [&str; 7] = [
    "restart",
    "proc-user",
    "proc-stop-signal",
    "proc-wait",
    "proc-signals",
    "proc-reload-signal",
    "proc-export-file-var",
];

impl ProcsSettings {
    /// Reads the options of [`OPTIONS`].
    pub fn from_options(given: &mut Given) -> Result<ProcsSettings, Failure> {
        let mut s = ProcsSettings::default();
        if let Some(r) = given.take("procfile") {
            s.procfile = r.last().map(PathBuf::from);
        }
        for (key, long) in PER_PROCESS.into_iter().enumerate() {
            let Some(raw) = given.take(long) else {
                continue;
            };
            for text in &raw.values {
                let p = s.read_one(key, text).map_err(|e| raw.error(e))?;
                p.from.get_or_insert((raw.opt, raw.source));
                if p.exports.is_some() {
                    p.exports_from.get_or_insert((raw.opt, raw.source));
                }
            }
        }
        if let Some(r) = given.take("proc-prefix") {
            s.prefix = r.parse_last(parse_bool)?.unwrap_or(false);
        }
        Ok(s)
    }

    /// One value of the per-process option `PER_PROCESS[key]`: the entry
    /// of the process it names.
    fn read_one(&mut self, key: usize, text: &str) -> Result<&mut ForProc, String> {
        let (name, value) = match (key, text.split_once('=')) {
            (0, _) => (text, ""),
            (_, Some(pair)) => pair,
            (_, None) => {
                return Err(format!("{text:?} is not NAME=VALUE"));
            }
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.bytes().all(procfile::name_byte) {
            return Err(format!("{name:?} is not a process name"));
        }
        let at = match self.each.iter().position(|p| p.name == name) {
            Some(at) => at,
            None => {
                self.each.push(ForProc {
                    name: name.to_string(),
                    restart: false,
                    user: None,
                    stop_signal: None,
                    signals: None,
                    waits: Vec::new(),
                    reload_signal: None,
                    exports: None,
                    from: None,
                    exports_from: None,
                });
                self.each.len() - 1
            }
        };
        let p = &mut self.each[at];
        match key {
            0 => p.restart = true,
            1 => p.user = Some(value.to_string()),
            2 => p.stop_signal = Some(signals::parse(value)?),
            3 => p.waits.push(wait::parse(value)?),
            4 => p.signals = Some(parse_signals(value)?),
            5 => p.reload_signal = Some(parse_reload_signal(value)?),
            _ => {
                let names = p.exports.get_or_insert_with(Vec::new);
                for var in value.split('+') {
                    names.push(launch::parse_export_name(var.trim())?);
                }
            }
        }
        Ok(p)
    }
}

/// A signal, or `none` (0: the process gets nothing after a reload).
fn parse_reload_signal(text: &str) -> Result<i32, String> {
    match text.eq_ignore_ascii_case("none") {
        true => Ok(0),
        false => signals::parse(text),
    }
}

/// `HUP+USR1`, `HUP:USR2+USR1` (HUP sent as USR2), or `none`: the
/// signals a process gets, as `(received, sent)`.
pub fn parse_signals(text: &str) -> Result<Vec<(i32, i32)>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut routes = Vec::new();
    for item in text.split('+') {
        let (from, to) = item.split_once(':').unwrap_or((item, item));
        routes.push((signals::parse(from)?, signals::parse(to)?));
    }
    Ok(routes)
}

/// One process, ready to start.
#[derive(Debug)]
pub struct Proc<'a> {
    /// Its row in the lifecycle's table.
    pub member: Member,
    /// The command and its arguments.
    pub argv: Vec<CString>,
    /// Its environment; `None` inherits envinit's.
    pub env: Option<Vec<CString>>,
    /// The user to switch to between fork and exec, if any.
    pub user: Option<Identity>,
    /// `--proc-wait`: what to wait for before the exec.
    pub waits: &'a [Target],
}

/// Every process of this start, in start order.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The processes.
    pub procs: Vec<Proc<'a>>,
    /// `--wait-timeout`: the bound on each process's wait.
    pub wait_timeout: Duration,
    /// `--proc-prefix`.
    pub prefix: bool,
}

/// `--check` with `--procfile`: what [`prepare`] would refuse (the
/// Procfile's lines, a `--proc-*` option naming no process, a
/// `--proc-user` that does not exist), without starting anything or
/// reading what `--user` and `--export-file-var` read.
#[inline(never)]
pub fn check(
    settings: &ProcsSettings,
    command: &[OsString],
    exported: &[String],
) -> Result<(), Failure> {
    prepare(
        settings,
        command,
        &Launch::default(),
        exported,
        Duration::ZERO,
    )
    .map(drop)
}

/// Reads the Procfile and makes every process ready to start: the
/// command after `--` (if any) last, as `main`; `launch` (the `--user`
/// and the environment made for it) as every process's default, with the
/// `exported` variables (`--export-file-var`) where `--proc-export-file-var`
/// lets them reach;
/// `wait_timeout` bounds each process's dependency wait. Out of line: the
/// one-process path in `main` stays as it was.
#[inline(never)]
pub fn prepare<'a>(
    settings: &'a ProcsSettings,
    command: &[OsString],
    launch: &Launch,
    exported: &[String],
    wait_timeout: Duration,
) -> Result<Plan<'a>, Failure> {
    let mut entries = match &settings.procfile {
        Some(path) => read_procfile(path, !command.is_empty())?,
        None => Vec::new(),
    };
    if !command.is_empty() {
        entries.push(procfile::Entry {
            name: MAIN.into(),
            line: 0,
            env: Vec::new(),
            // Words from argv hold no NUL byte.
            argv: command
                .iter()
                .filter_map(|w| CString::new(w.as_bytes()).ok())
                .collect(),
        });
    }
    let unknown = (settings.each.iter()).find(|p| !entries.iter().any(|e| e.name == p.name));
    if let Some((p, Some(from))) = unknown.map(|p| (p, p.from)) {
        return Err(option_error(
            from,
            format!(
                "no process is named {:?} (not in the Procfile, not main)",
                p.name
            ),
        ));
    }
    // --proc-export-file-var: only named --export-file-var variables.
    for p in &settings.each {
        let unknown = p.exports.iter().flatten().find(|v| !exported.contains(v));
        if let (Some(var), Some(from)) = (unknown, p.exports_from) {
            return Err(option_error(
                from,
                format!(
                    "{var} is not exported: add --export-file-var {var} (process {:?})",
                    p.name
                ),
            ));
        }
    }
    let scoped = settings.each.iter().any(|p| p.exports.is_some());
    let default_user = launch.identity.as_ref().filter(|_| launch.switch);
    let mut procs = Vec::with_capacity(entries.len());
    for entry in entries {
        let given = settings.each.iter().find(|p| p.name == entry.name);
        let mut set = entry.env;
        let user = match given.and_then(|p| p.user.as_deref()) {
            Some(spec) => {
                let (identity, switch) = launch::identity(spec, "--proc-user").map_err(|e| {
                    Failure::new(exit::CONFIG, e.replacen("--user", "--proc-user", 1))
                })?;
                // Before the Procfile's own variables, which win.
                set.insert(0, [b"HOME=", identity.home.as_bytes()].concat());
                switch.then_some(identity)
            }
            None => default_user.cloned(),
        };
        procs.push(Proc {
            member: Member {
                name: entry.name,
                stop_signal: given.and_then(|p| p.stop_signal),
                signals: given.and_then(|p| p.signals.clone()),
                restart: given.is_some_and(|p| p.restart),
                reload_signal: given.and_then(|p| p.reload_signal),
            },
            argv: entry.argv,
            env: hide_exports(
                environment(launch.env.as_deref(), &set),
                exported,
                scoped.then(|| given.and_then(|p| p.exports.as_deref()).unwrap_or_default()),
            ),
            user,
            waits: given.map_or(&[], |p| p.waits.as_slice()),
        });
    }
    if procs.is_empty() {
        return Err(Failure::new(
            exit::CONFIG,
            format!(
                "{}: no process: add NAME: COMMAND lines, or a command after --",
                settings
                    .procfile
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            ),
        ));
    }
    Ok(Plan {
        procs,
        wait_timeout,
        prefix: settings.prefix,
    })
}

/// Reads and parses the Procfile; `main_taken`: a command after `--` is
/// the process `main`.
fn read_procfile(path: &Path, main_taken: bool) -> Result<Vec<procfile::Entry>, Failure> {
    let fail = |line: usize, what: &str| {
        let at = match line {
            0 => String::new(),
            _ => format!(":{line}"),
        };
        Failure::new(exit::CONFIG, format!("{}{at}: {what}", path.display()))
    };
    let mut text = String::new();
    let read = chase::find(path)
        .and_then(|found| found.open_read())
        .map_err(|e| match e {
            chase::Error::Unsafe(refused) => refused.describe(),
            chase::Error::Io { errno, .. } => errno.desc().into(),
        })
        .and_then(|file| {
            file.take(MAX_PROCFILE + 1)
                .read_to_string(&mut text)
                .map_err(|e| exit::reason(&e))
        });
    if let Err(why) = read {
        return Err(fail(0, &format!("cannot read the Procfile: {why}")));
    }
    if text.len() as u64 > MAX_PROCFILE {
        return Err(fail(0, "larger than 64 KiB"));
    }
    let entries = procfile::parse(&text).map_err(|(line, what)| fail(line, what))?;
    match entries.iter().find(|e| e.name == MAIN && main_taken) {
        Some(e) => Err(fail(
            e.line,
            "main is the command after --: rename this process",
        )),
        None => Ok(entries),
    }
}

/// The environment `base` (envinit's own when `None`) with the `NAME=VALUE`
/// entries of `set` set; `None` (inherit) when there is nothing to change.
fn environment(base: Option<&[CString]>, set: &[Vec<u8>]) -> Option<Vec<CString>> {
    if set.is_empty() {
        return base.map(<[CString]>::to_vec);
    }
    let mut env: Vec<CString> = match base {
        Some(base) => base.to_vec(),
        // envinit's own (launch's builder: it cannot fail without exports).
        None => launch::child_env(std::env::vars_os().collect(), None, None).unwrap_or_default(),
    };
    for entry in set {
        let key = entry.split(|&b| b == b'=').next().unwrap_or_default();
        env.retain(|e| {
            e.as_bytes()
                .strip_prefix(key)
                .is_none_or(|rest| rest.first() != Some(&b'='))
        });
        if let Ok(entry) = CString::new(entry.as_slice()) {
            env.push(entry);
        }
    }
    Some(env)
}

/// An error about the value of an option, as the option reports it (64
/// from the command line, 78 from a variable).
fn option_error((opt, source): (&'static Opt, Source), message: String) -> Failure {
    let from = Raw {
        opt,
        values: Vec::new(),
        source,
    };
    from.error(message)
}

/// `env` without the `exported` variables that are not in `only` (when
/// `--proc-export-file-var` is in use: `only` is what it gave this
/// process). Removes the `NAME=` entries; the export already took out
/// their `NAME_FILE`.
fn hide_exports(
    env: Option<Vec<CString>>,
    exported: &[String],
    only: Option<&[String]>,
) -> Option<Vec<CString>> {
    let mut env = env?;
    if let Some(only) = only {
        for var in exported.iter().filter(|v| !only.contains(v)) {
            env.retain(|e| {
                e.as_bytes()
                    .strip_prefix(var.as_bytes())
                    .is_none_or(|rest| rest.first() != Some(&b'='))
            });
        }
    }
    Some(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Lexed, from_variables, lex};

    fn settings(args: &[&str], vars: &[(&str, &str)]) -> Result<ProcsSettings, Failure> {
        let Lexed::Run { options, .. } = lex(args.iter().map(OsString::from).collect()).unwrap()
        else {
            panic!()
        };
        let vars = vars
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let mut given = Given::new(options, from_variables(vars).unwrap().options);
        ProcsSettings::from_options(&mut given)
    }

    #[test]
    fn exported_variables_go_only_where_named_once_one_process_is() {
        let s = settings(
            &["--proc-export-file-var", "php=DB_PASSWORD+API_TOKEN"],
            &[("ENVINIT_PROC_EXPORT_FILE_VAR", "cron=API_TOKEN")],
        )
        .unwrap();
        let of = |name: &str| {
            s.each
                .iter()
                .find(|p| p.name == name)
                .unwrap()
                .exports
                .clone()
        };
        assert_eq!(
            of("php"),
            Some(vec!["DB_PASSWORD".into(), "API_TOKEN".into()])
        );
        assert!(settings(&["--proc-export-file-var", "php=DB_PASSWORD_FILE"], &[]).is_err());
        assert!(settings(&["--proc-export-file-var", "php=A-B"], &[]).is_err());
        let env = || {
            Some(vec![
                c"A=1".to_owned(),
                c"DB=x".to_owned(),
                c"DBX=2".to_owned(),
            ])
        };
        let exported = ["DB".to_string()];
        assert_eq!(hide_exports(env(), &exported, None), env());
        assert_eq!(
            hide_exports(env(), &exported, Some(&[])),
            Some(vec![c"A=1".to_owned(), c"DBX=2".to_owned()])
        );
        assert_eq!(hide_exports(env(), &exported, Some(&exported)), env());
        assert_eq!(hide_exports(None, &exported, Some(&[])), None);
    }

    #[test]
    fn per_process_options_from_the_command_line_and_variables() {
        let s = settings(
            &[
                "--procfile=/P",
                "--proc-user",
                "nginx=root",
                "--proc-stop-signal",
                "nginx=QUIT",
                "--proc-wait",
                "nginx=unix:///run/php.sock",
                "--proc-wait",
                "nginx=tcp://db:5432",
                "--proc-signals=cron=none",
                "--proc-signals=nginx=HUP+USR1",
                "--restart",
                "cron",
                "--proc-prefix",
                "app",
            ],
            &[("ENVINIT_PROC_USER", "ignored=x")],
        )
        .unwrap();
        assert_eq!(s.procfile, Some(PathBuf::from("/P")));
        let names: Vec<&str> = s.each.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cron", "nginx"]);
        let (cron, nginx) = (&s.each[0], &s.each[1]);
        assert!(cron.restart && !nginx.restart);
        assert_eq!(nginx.user.as_deref(), Some("root"));
        assert_eq!(nginx.stop_signal, Some(3));
        assert_eq!(nginx.waits.len(), 2);
        assert_eq!(cron.signals, Some(vec![]));
        assert_eq!(nginx.signals, Some(vec![(1, 1), (10, 10)]));
        assert!(s.prefix);

        let s = settings(
            &["app"],
            &[
                ("ENVINIT_PROC_USER", "worker=www-data, cron=root"),
                ("ENVINIT_RESTART", "cron,worker"),
                ("ENVINIT_PROC_STOP_SIGNAL", "web=SIGQUIT"),
            ],
        )
        .unwrap();
        let names: Vec<&str> = s.each.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), 3);
        let find = |n: &str| s.each.iter().find(|p| p.name == n).unwrap();
        assert_eq!(find("cron").user.as_deref(), Some("root"));
        assert!(find("worker").restart && find("cron").restart);
        assert_eq!(find("web").stop_signal, Some(3));
    }

    #[test]
    fn bad_values_are_64_on_the_command_line_and_78_as_variables() {
        for args in [
            &["--proc-user", "root", "x"][..],
            &["--proc-stop-signal", "nginx=BOGUS", "x"],
            &["--proc-wait", "nginx=db:5432", "x"],
            &["--proc-signals", "nginx=HUP,USR1", "x"],
            &["--restart", "a b", "x"],
            &["--proc-user", "=root", "x"],
        ] {
            let e = settings(args, &[]).unwrap_err();
            assert_eq!(e.code, exit::USAGE, "{args:?}: {e}");
            assert!(e.message().starts_with(args[0]), "{e}");
        }
        let e = settings(&["x"], &[("ENVINIT_PROC_SIGNALS", "a=HUP+NOPE")]).unwrap_err();
        assert_eq!(e.code, exit::CONFIG, "{e}");
        assert!(
            e.message().starts_with("ENVINIT_PROC_SIGNALS: \"NOPE\""),
            "{e}"
        );
    }

    #[test]
    fn options_naming_no_process_are_errors() {
        let s = settings(&["--proc-user", "ngnix=root", "x"], &[]).unwrap();
        let launch = Launch::default();
        let e = prepare(&s, &[OsString::from("app")], &launch, &[], Duration::ZERO).unwrap_err();
        assert_eq!(e.code, exit::USAGE);
        assert_eq!(
            e.message(),
            "--proc-user: no process is named \"ngnix\" (not in the Procfile, not main) (see envinit --help)"
        );
        let s = settings(&["x"], &[("ENVINIT_RESTART", "cron")]).unwrap();
        let e = prepare(&s, &[OsString::from("app")], &launch, &[], Duration::ZERO).unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert!(
            e.message().starts_with("ENVINIT_RESTART: no process"),
            "{e}"
        );
    }

    #[test]
    fn the_command_is_main_last_and_the_procfile_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("envinit-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("Procfile");
        std::fs::write(&file, "# site\nweb: A=1 nginx -g 'daemon off;'\nmain: x\n").unwrap();
        let mut s = ProcsSettings {
            procfile: Some(file.clone()),
            ..ProcsSettings::default()
        };
        let e = prepare(
            &s,
            &[OsString::from("app")],
            &Launch::default(),
            &[],
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert_eq!(
            e.message(),
            format!(
                "{}:3: main is the command after --: rename this process",
                file.display()
            )
        );
        let plan = prepare(&s, &[], &Launch::default(), &[], Duration::ZERO).unwrap();
        assert_eq!(plan.procs.len(), 2);
        std::fs::write(&file, "web: nginx -g 'daemon off;'\n").unwrap();
        let Lexed::Run { options, .. } = lex(vec!["--restart".into(), "main".into()]).unwrap()
        else {
            panic!()
        };
        s.each = ProcsSettings::from_options(&mut Given::new(options, vec![]))
            .unwrap()
            .each;
        let plan = prepare(
            &s,
            &[OsString::from("sh"), OsString::from("-c")],
            &Launch::default(),
            &[],
            Duration::from_secs(3),
        )
        .unwrap();
        let names: Vec<&str> = plan.procs.iter().map(|p| p.member.name.as_str()).collect();
        assert_eq!(names, ["web", "main"]);
        assert_eq!(plan.procs[1].argv, [c"sh", c"-c"]);
        assert!(plan.procs[1].member.restart && !plan.procs[0].member.restart);
        assert_eq!(plan.procs[0].env, None, "inherited");
        assert_eq!(plan.wait_timeout, Duration::from_secs(3));
        std::fs::write(&file, "web: echo $HOME\n").unwrap();
        let e = prepare(&s, &[], &Launch::default(), &[], Duration::ZERO).unwrap_err();
        assert!(
            e.message()
                .starts_with(&format!("{}:1: $ and ` are not expanded", file.display()))
        );
        std::fs::write(&file, "# nothing\n").unwrap();
        s.each.clear();
        let e = prepare(&s, &[], &Launch::default(), &[], Duration::ZERO).unwrap_err();
        assert!(
            e.message()
                .ends_with("no process: add NAME: COMMAND lines, or a command after --"),
            "{e}"
        );
        let e = prepare(
            &ProcsSettings {
                procfile: Some(dir.join("missing")),
                ..ProcsSettings::default()
            },
            &[],
            &Launch::default(),
            &[],
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(
            e.message()
                .ends_with("cannot read the Procfile: No such file or directory"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn environments_are_inherited_unless_something_is_set() {
        let base = vec![
            c"A=1".to_owned(),
            c"HOME=/root".to_owned(),
            c"AB=2".to_owned(),
        ];
        assert_eq!(environment(None, &[]), None);
        assert_eq!(environment(Some(&base), &[]), Some(base.clone()));
        let env =
            environment(Some(&base), &[b"A=x y".to_vec(), b"HOME=/var/www".to_vec()]).unwrap();
        assert_eq!(env, [c"AB=2", c"A=x y", c"HOME=/var/www"]);
        let env = environment(None, &[b"ENVINIT_T=1".to_vec()]).unwrap();
        assert!(env.iter().any(|e| e.as_bytes() == b"ENVINIT_T=1"));
        assert!(env.len() > 1, "envinit's own environment as the base");
    }

    #[test]
    fn signal_lists() {
        assert_eq!(parse_signals("none"), Ok(vec![]));
        assert_eq!(parse_signals("HUP"), Ok(vec![(1, 1)]));
        assert_eq!(
            parse_signals("HUP:SIGUSR2+USR1+RTMIN"),
            Ok(vec![(1, 12), (10, 10), (34, 34)])
        );
        for bad in ["HUP+", "HUP:", "HUP:X", "HUP,USR1"] {
            assert!(parse_signals(bad).is_err(), "{bad}");
        }
    }
}
