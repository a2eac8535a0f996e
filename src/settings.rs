//! Settings: everything envinit is told, from its command line and from
//! `ENVINIT_*` environment variables, parsed once into one [`Settings`]
//! value that the other phases read.
//!
//! Rules (docs/options.md):
//! - Option parsing stops at the first word that is not an option (the
//!   command) or at `--`: the child's own flags are never taken.
//! - Every option `--some-name` can also be given as `ENVINIT_SOME_NAME`
//!   (read with envy). The command line wins: a repeatable option given on
//!   the command line replaces the variable's list.
//! - Booleans take `1/0`, `true/false`, `yes/no`, `on/off`; an empty
//!   variable counts as unset.
//! - A bad command line is a usage error (exit 64); a bad variable is a
//!   configuration error (exit 78). Both name the option and the fix.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::exit;
use crate::follow::{self, FollowSettings};
use crate::launch::{self, LaunchSettings};
use crate::signals;
use crate::vm::{self, VmSettings};
use crate::wait::{self, Checks};

/// Everything envinit does in this start.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The command and its arguments, byte-exact. Empty only with `--check`.
    pub command: Vec<OsString>,
    /// How the child is supervised.
    pub supervise: SuperviseSettings,
    /// Exit-code rewrites applied to the final code, first match wins.
    pub remap_exit: Vec<(u8, u8)>,
    /// Config files to render before the start.
    pub render: RenderSettings,
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
}

/// How the child is run and stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct SuperviseSettings {
    /// How long the whole tree gets to exit after a stop signal (or after
    /// the main child exits with orphans left) before SIGKILL.
    pub grace: Duration,
    /// How long to hold the first stop signal before forwarding it.
    pub pre_stop_delay: Duration,
    /// Forward signals to the child's whole process group.
    pub signal_group: bool,
    /// Signal rewrites: received signal to forwarded signal (`None` drops it).
    pub rewrites: Vec<(i32, Option<i32>)>,
    /// VM mode: the kernel turns Ctrl-Alt-Del into SIGINT to PID 1; it is
    /// then a stop request handled as this signal (the image's StopSignal,
    /// else SIGTERM), as `docker stop` would send it. `None` outside VMs.
    pub ctrl_alt_del: Option<i32>,
}

impl Default for SuperviseSettings {
    fn default() -> Self {
        SuperviseSettings {
            grace: Duration::from_secs(8),
            pre_stop_delay: Duration::ZERO,
            signal_group: false,
            rewrites: Vec::new(),
            ctrl_alt_del: None,
        }
    }
}

/// Config files rendered at start (docs/templates.md).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSettings {
    /// `--template SRC:DEST` pairs; SRC may be a directory.
    pub templates: Vec<PathPair>,
    /// `--ini PREFIX:DEST` targets.
    pub ini: Vec<IniTarget>,
    /// Render in memory and report, write nothing, run nothing.
    pub check: bool,
    /// Where `{{ secrets.NAME }}` reads from.
    pub secrets_dir: PathBuf,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            templates: Vec::new(),
            ini: Vec::new(),
            check: false,
            secrets_dir: PathBuf::from("/run/secrets"),
        }
    }
}

impl RenderSettings {
    /// True when there is nothing to render (the common fast path).
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.ini.is_empty()
    }
}

/// A template source and where its output goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPair {
    /// The template file or directory.
    pub src: PathBuf,
    /// The rendered file or directory.
    pub dest: PathBuf,
}

/// `--ini PREFIX:DEST`: variables named `PREFIX...` become lines of DEST.
#[derive(Debug, Clone, PartialEq)]
pub struct IniTarget {
    /// The variable-name prefix, kept as written (case-sensitive).
    pub prefix: String,
    /// The ini file to write.
    pub dest: PathBuf,
}

/// envinit's own logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// The most verbose level printed; `None` prints nothing.
    pub level: Option<tracing::Level>,
    /// One line of text or one JSON object per event.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: Some(tracing::Level::WARN),
            json: false,
        }
    }
}

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

/// A bad option, with the exit code it earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// 64 for the command line, 78 for a variable.
    pub code: u8,
    /// One line: what is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn usage(message: String) -> SettingsError {
    SettingsError {
        code: exit::USAGE,
        message: format!("{message} (see envinit --help)"),
    }
}

fn config(message: String) -> SettingsError {
    SettingsError {
        code: exit::CONFIG,
        message,
    }
}

/// The line printed after a usage error (exit 64), so that people and
/// scripts find the word "usage".
pub const USAGE_LINE: &str = "usage: envinit [OPTIONS] [--] COMMAND [ARG...]";

/// The usage text printed by `--help`.
pub const HELP: &str = "\
envinit: render config from the environment, then run COMMAND as PID 1

Usage: envinit [OPTIONS] [--] COMMAND [ARG...]
       envinit --check [OPTIONS]
       envinit --probe URL [--probe URL...] [--probe-timeout DURATION]

Options stop at the first word that is not an option: the command's own
flags are passed on untouched. Each option can also be set by a variable
ENVINIT_<NAME> (e.g. ENVINIT_GRACE=30s); the command line wins.

Supervision:
      --grace DURATION        time the whole process tree gets to exit after a
                              stop signal before SIGKILL [default: 8s, inside
                              Docker's and Swarm's 10 s stop timeout]
      --pre-stop-delay DURATION
                              hold the first stop signal this long before
                              forwarding it [default: 0s]
      --signal-group[=BOOL]   forward signals to the child's process group
      --rewrite FROM:TO       forward signal FROM as TO (TO=none drops it),
                              e.g. TERM:QUIT; repeatable
      --remap-exit CODE[:NEW] exit NEW (default 0) when the child exits CODE,
                              e.g. 143; repeatable
Config:
  -t, --template SRC:DEST     render template file or directory SRC to DEST;
                              repeatable
      --ini PREFIX:DEST       write variables PREFIX<key> as `key = value`
                              lines of DEST; repeatable
      --secrets-dir DIR       where {{ secrets.NAME }} reads [default: /run/secrets]
      --check[=BOOL]          render in memory, report problems, write and run
                              nothing (exit 0 or 78)
Start-up:
  -u, --user USER[:GROUP]     run COMMAND as this user (names or numeric ids,
                              from /etc/passwd and /etc/group); envinit stays root
      --export-file-var NAME  give COMMAND NAME=<content of the file NAME_FILE
                              names> and no NAME_FILE, as file_env does; an
                              unreadable file is an error; repeatable
      --wait URL              start COMMAND only once URL is ready: tcp://HOST:PORT,
                              http://HOST[:PORT]/PATH (2xx), unix:///PATH,
                              file:///PATH; repeatable, all checked at once
      --wait-timeout DURATION give up (exit 69) after this long [default: 60s]
Log files:
      --stdout FILE           copy the lines the app writes to FILE to stdout,
                              following it like tail -F; repeatable
      --stderr FILE           the same, to stderr; repeatable
      --log-prefix[=BOOL]     start each copied line with the file's name
      --rotate-wait DURATION  after a rotation, read the old file on until it
                              has been quiet this long [default: 5s]
Health check (runs no command):
      --probe URL             check URL once (same forms as --wait); exit 0 if
                              all are ready, 1 if not; repeatable
      --probe-timeout DURATION
                              bound on the probe [default: 2s]
VM mode (envinit as a microVM's init, docs/vm.md):
      --vm auto|on|off        mount /proc, /sys, /dev... and power off at the
                              end; auto: when PID 1 and /proc is not mounted
      --vm-exit poweroff|reboot
                              how the machine ends [default: poweroff]
      --image-config FILE     run what `docker image inspect --format
                              '{{json .Config}}'` printed [default in VM mode:
                              /etc/envinit/image.json when it exists]
Other:
  -h, --help                  print this help
  -V, --version               print the version

Environment only: ENVINIT_LOG=error|warn|info|debug|trace|off (default warn:
a clean run prints nothing), ENVINIT_LOG_FORMAT=text|json, ENVINIT_HOSTNAME
(VM mode). Durations: 500ms, 10s, 2m, 1h (a bare number is
seconds). Booleans: 1/0, true/false, yes/no, on/off.
Exit codes: the child's code; 128+N if it was killed by signal N; 64 usage,
69 dependency not ready, 71 OS error, 78 config error, 126 not executable,
127 not found.
Docs: docs/options.md, docs/templates.md, docs/exit-codes.md
";

/// The option names (as `--name`); `ENVINIT_NAME` is the upper-snake form.
const VALUE_OPTIONS: &[&str] = &[
    "grace",
    "pre-stop-delay",
    "rewrite",
    "remap-exit",
    "template",
    "ini",
    "secrets-dir",
    "user",
    "export-file-var",
    "wait",
    "wait-timeout",
    "probe",
    "probe-timeout",
    "stdout",
    "stderr",
    "rotate-wait",
    "vm",
    "vm-exit",
    "image-config",
];
const BOOL_OPTIONS: &[&str] = &["signal-group", "check", "log-prefix"];

/// Options that were replaced: the old name, then what to write instead
/// for the command line and for the variable. Using one is an error that
/// says so (64 on the command line, 78 as a variable).
const REPLACED: &[(&str, &str, &str)] = &[(
    "export-file-vars",
    "--export-file-var NAME (repeatable): name the variables to export, e.g. --export-file-var MYSQL_PASSWORD",
    "ENVINIT_EXPORT_FILE_VAR (a list): name the variables to export, e.g. ENVINIT_EXPORT_FILE_VAR=MYSQL_PASSWORD,API_TOKEN",
)];

/// The start-up options (`start_up`) and their variables.
const START_UP_VARS: [(&str, &str); 6] = [
    ("user", "ENVINIT_USER"),
    ("export-file-var", "ENVINIT_EXPORT_FILE_VAR"),
    ("wait", "ENVINIT_WAIT"),
    ("wait-timeout", "ENVINIT_WAIT_TIMEOUT"),
    ("probe", "ENVINIT_PROBE"),
    ("probe-timeout", "ENVINIT_PROBE_TIMEOUT"),
];

/// The VM options (`vm`) and their variables.
const VM_VARS: [(&str, &str); 3] = [
    ("vm", "ENVINIT_VM"),
    ("vm-exit", "ENVINIT_VM_EXIT"),
    ("image-config", "ENVINIT_IMAGE_CONFIG"),
];

/// The log-file options (`follow`) and their variables.
const FOLLOW_VARS: [(&str, &str); 4] = [
    ("stdout", "ENVINIT_STDOUT"),
    ("stderr", "ENVINIT_STDERR"),
    ("log-prefix", "ENVINIT_LOG_PREFIX"),
    ("rotate-wait", "ENVINIT_ROTATE_WAIT"),
];

/// Variables that are not options (`ENVINIT_LOG`, `ENVINIT_LOG_FORMAT`).
const ENV_ONLY: &[&str] = &["log", "log-format", "hostname"];

/// The option (or [`ENV_ONLY`] name) that `key`, an `ENVINIT_*` name,
/// names. Only runs for the `ENVINIT_*` variables present.
fn variable_option(key: &str) -> Option<&'static str> {
    [VALUE_OPTIONS, BOOL_OPTIONS, ENV_ONLY]
        .iter()
        .flat_map(|list| list.iter())
        .find(|option| is_variable_of(key, option))
        .copied()
}

/// Is `key` the variable of `option` (`ENVINIT_` and its upper-snake
/// name)? Compared in place: no string is built per option.
fn is_variable_of(key: &str, option: &str) -> bool {
    key.strip_prefix("ENVINIT_").is_some_and(|name| {
        name.len() == option.len()
            && name.bytes().zip(option.bytes()).all(|(k, o)| {
                k == match o {
                    b'-' => b'_',
                    _ => o.to_ascii_uppercase(),
                }
            })
    })
}

/// The `ENVINIT_*` variables, as envy sees them (names lower-cased, prefix
/// dropped). Values stay strings here so errors can name the variable.
#[derive(Debug, Default, Deserialize)]
struct EnvOptions {
    grace: Option<String>,
    pre_stop_delay: Option<String>,
    signal_group: Option<String>,
    rewrite: Option<String>,
    remap_exit: Option<String>,
    template: Option<String>,
    ini: Option<String>,
    secrets_dir: Option<String>,
    check: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
}

/// This process's argument words, without argv\[0\].
pub fn process_args() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// Reads the settings from argument words (see [`process_args`]) and
/// `ENVINIT_*` variables (see [`process_variables`]).
pub fn from_process(
    args: Vec<OsString>,
    variables: Vec<(OsString, OsString)>,
) -> Result<Request, SettingsError> {
    let env = envinit_vars(variables.into_iter())?;
    parse(args, env)
}

/// This process's `ENVINIT_*` variables, raw (see [`from_process`]).
pub fn process_variables() -> Vec<(OsString, OsString)> {
    environ_with_prefix(b"ENVINIT_")
}

/// The environment entries whose name starts with `prefix`, found in one
/// pass over the C library's `environ` without copying the others. (Copying
/// the whole environment with `std::env::vars_os`, or one `getenv` per
/// option, costs more than the rest of envinit's start-up.)
fn environ_with_prefix(prefix: &[u8]) -> Vec<(OsString, OsString)> {
    use std::ffi::{CStr, c_char};
    use std::os::unix::ffi::OsStrExt as _;
    unsafe extern "C" {
        static environ: *const *const c_char;
    }
    let mut found = Vec::new();
    // SAFETY: `environ` is the C library's NULL-terminated array of
    // NUL-terminated strings. envinit is single-threaded here and never
    // modifies its environment, so the array is stable while we read it.
    // The prefix holds no NUL, so the byte-wise comparison stops at a
    // string's end at the latest.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            // Compare the prefix before measuring the string: most entries
            // differ in their first byte, and strlen on each costs more.
            let text = (*entry).cast::<u8>();
            let mut same = 0;
            while same < prefix.len() && *text.add(same) == prefix[same] {
                same += 1;
            }
            if same == prefix.len() {
                let bytes = CStr::from_ptr(*entry).to_bytes();
                if let Some(eq) = bytes.iter().position(|b| *b == b'=') {
                    let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
                    found.push((
                        std::ffi::OsStr::from_bytes(key).to_os_string(),
                        std::ffi::OsStr::from_bytes(value).to_os_string(),
                    ));
                }
            }
            entry = entry.add(1);
        }
    }
    found
}

/// Keeps the `ENVINIT_*` variables, which must be valid Unicode; every other
/// variable is skipped without being decoded (a container may hold
/// variables that are not Unicode, and envy would panic on them). Empty
/// values count as unset.
fn envinit_vars(
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, SettingsError> {
    let mut kept = Vec::new();
    for (key, value) in vars {
        if !key.as_bytes().starts_with(b"ENVINIT_") {
            continue;
        }
        let key = key
            .into_string()
            .map_err(|k| config(format!("variable {k:?} is not valid UTF-8: rename it")))?;
        let value = value
            .into_string()
            .map_err(|_| config(format!("{key} is not valid UTF-8: fix its value")))?;
        if !value.is_empty() {
            kept.push((key, value));
        }
    }
    Ok(kept)
}

/// Parses command-line words (without argv[0]) over `ENVINIT_*` variables.
pub fn parse(args: Vec<OsString>, env: Vec<(String, String)>) -> Result<Request, SettingsError> {
    let mut cli = CliValues::default();
    let mut words = args.into_iter();
    let mut command = Vec::new();
    while let Some(word) = words.next() {
        let bytes = word.as_bytes();
        if bytes == b"--" {
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            command.push(word);
            break;
        }
        let text = word
            .to_str()
            .ok_or_else(|| usage(format!("option {word:?} is not valid UTF-8")))?;
        let (name, inline) = split_option(text)?;
        match name {
            "help" => return Ok(Request::Help),
            "version" => return Ok(Request::Version),
            _ => {}
        }
        if let Some(known) = BOOL_OPTIONS.iter().find(|o| **o == name) {
            cli.push(known, inline.unwrap_or_else(|| "true".into()));
        } else if let Some(known) = VALUE_OPTIONS.iter().find(|o| **o == name) {
            let value = match inline {
                Some(v) => v,
                None => words
                    .next()
                    .ok_or_else(|| usage(format!("--{name} needs a value")))?
                    .into_string()
                    .map_err(|_| usage(format!("the value of --{name} is not valid UTF-8")))?,
            };
            cli.push(known, value);
        } else {
            return Err(unknown_option(name));
        }
    }
    command.extend(words);
    build(command, cli, env)
}

/// How many of `args` are envinit's leading options (with their values,
/// and the `--` that ends them, if any): the command starts after them.
/// Words that are not valid options end the count where `parse` would
/// report them.
pub fn option_words(args: &[OsString]) -> usize {
    let mut i = 0;
    while let Some(word) = args.get(i) {
        let bytes = word.as_bytes();
        if bytes == b"--" {
            return i + 1;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            return i;
        }
        let Some(Ok((name, inline))) = word.to_str().map(split_option) else {
            return i;
        };
        i += 1;
        if inline.is_none() && VALUE_OPTIONS.contains(&name) {
            i += 1;
        }
    }
    args.len()
}

/// The last value given to `--name` among the leading options of `args`
/// (before the command is parsed as a whole: for VM mode's phase 0).
pub fn leading_value(args: &[OsString], name: &str) -> Option<String> {
    let options = &args[..option_words(args).min(args.len())];
    let mut found = None;
    let mut words = options.iter();
    while let Some(word) = words.next() {
        let Some(Ok((option, inline))) = word.to_str().map(split_option) else {
            continue;
        };
        let value = match inline {
            Some(v) => Some(v),
            None if VALUE_OPTIONS.contains(&option) => {
                words.next().and_then(|w| w.to_str()).map(String::from)
            }
            None => None,
        };
        if option == name {
            found = value.or(found);
        }
    }
    found
}

/// Option values from the command line, in order, by option name.
#[derive(Default)]
struct CliValues(Vec<(&'static str, Vec<String>)>);

impl CliValues {
    fn push(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => self.0.push((name, vec![value])),
        }
    }

    fn take(&mut self, name: &str) -> Option<Vec<String>> {
        let i = self.0.iter().position(|(n, _)| *n == name)?;
        Some(self.0.swap_remove(i).1)
    }
}

/// The error for `--name`, which is no option: what replaced it, if it
/// was one (out of line: start-up's common path never comes here).
#[cold]
#[inline(never)]
fn unknown_option(name: &str) -> SettingsError {
    match REPLACED.iter().find(|(old, _, _)| *old == name) {
        Some((old, new, _)) => usage(format!("--{old} was replaced by {new}")),
        None => usage(format!("unknown option --{name}")),
    }
}

/// An error when `key`, an `ENVINIT_*` name of no option, is the variable
/// of a replaced option, saying what replaced it (out of line, as
/// [`unknown_option`]).
#[cold]
#[inline(never)]
fn replaced_variable(key: &str) -> Result<(), SettingsError> {
    match REPLACED.iter().find(|(old, _, _)| is_variable_of(key, old)) {
        Some((_, _, new)) => Err(config(format!("{key} was replaced by {new}"))),
        None => Ok(()),
    }
}

/// Splits `--name=value`, `--name`, `-t value`, `-tvalue`, `-h`, `-V`.
fn split_option(text: &str) -> Result<(&str, Option<String>), SettingsError> {
    if let Some(long) = text.strip_prefix("--") {
        return Ok(match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (long, None),
        });
    }
    let short = &text[1..];
    let (letter, rest) = short.split_at(short.chars().next().map_or(0, char::len_utf8));
    let name = match letter {
        "h" => "help",
        "V" => "version",
        "t" => "template",
        "u" => "user",
        _ => return Err(usage(format!("unknown option -{letter}"))),
    };
    Ok((name, (!rest.is_empty()).then(|| rest.to_string())))
}

/// Where a value came from, for error messages and exit codes.
#[derive(Clone, Copy)]
enum Source {
    Cli,
    Env,
}

/// One option's raw values, command line first.
struct Raw {
    name: &'static str,
    values: Vec<String>,
    source: Source,
}

impl Raw {
    fn error(&self, problem: String) -> SettingsError {
        match self.source {
            Source::Cli => usage(format!("--{}: {problem}", self.name)),
            Source::Env => config(format!("{}: {problem}", env_name(self.name))),
        }
    }

    fn last(&self) -> Option<&str> {
        self.values.last().map(String::as_str)
    }

    /// The last value, read by `parse`; `None` when there is none.
    fn parse_last<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SettingsError> {
        self.last()
            .map(parse)
            .transpose()
            .map_err(|e| self.error(e))
    }
}

fn env_name(option: &str) -> String {
    format!("ENVINIT_{}", option.to_ascii_uppercase().replace('-', "_"))
}

fn build(
    command: Vec<OsString>,
    mut cli: CliValues,
    env: Vec<(String, String)>,
) -> Result<Request, SettingsError> {
    // Which options the ENVINIT_* variables set: usually none or a few, so
    // an option that is not among them is not looked up in `from_env`
    // (each look-up costs a string match per option).
    let mut set_by_variables = Vec::new();
    let mut unknown_variables = Vec::new();
    for (key, _) in &env {
        match variable_option(key) {
            Some(option) => set_by_variables.push(option),
            None => {
                replaced_variable(key)?;
                unknown_variables.push(key.clone());
            }
        }
    }
    // The start-up, log-file and VM options' variables are looked up
    // directly: envy's derived code costs about 1 KiB of binary per field.
    let direct = || START_UP_VARS.iter().chain(&FOLLOW_VARS).chain(&VM_VARS);
    let start_up_env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| direct().any(|(_, var)| k == var))
        .cloned()
        .collect();
    // Checked once so that a start without them pays nothing more.
    let given = |table: &[(&str, &str)]| {
        start_up_env
            .iter()
            .any(|(k, _)| table.iter().any(|(_, var)| k == var))
            || cli.0.iter().any(|(n, _)| table.iter().any(|(o, _)| o == n))
    };
    let start_up_given = given(&START_UP_VARS);
    let follow_given = given(&FOLLOW_VARS);
    let vm_given = given(&VM_VARS);
    let env_options: EnvOptions = envy::prefixed("ENVINIT_")
        .from_iter(env)
        .map_err(|e| config(format!("ENVINIT_* variables: {e}")))?;
    let from_env = |name: &str| -> Option<String> {
        match name {
            "grace" => env_options.grace.clone(),
            "pre-stop-delay" => env_options.pre_stop_delay.clone(),
            "signal-group" => env_options.signal_group.clone(),
            "rewrite" => env_options.rewrite.clone(),
            "remap-exit" => env_options.remap_exit.clone(),
            "template" => env_options.template.clone(),
            "ini" => env_options.ini.clone(),
            "secrets-dir" => env_options.secrets_dir.clone(),
            "check" => env_options.check.clone(),
            _ => direct()
                .find(|(option, _)| *option == name)
                .and_then(|(_, var)| start_up_env.iter().find(|(k, _)| k == var))
                .map(|(_, v)| v.clone()),
        }
    };
    let mut raw = |name: &'static str| -> Option<Raw> {
        if let Some(values) = cli.take(name) {
            return Some(Raw {
                name,
                values,
                source: Source::Cli,
            });
        }
        if !set_by_variables.contains(&name) {
            return None;
        }
        let value = from_env(name)?;
        let values = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from);
        Some(Raw {
            name,
            values: values.collect(),
            source: Source::Env,
        })
    };

    let mut supervise = SuperviseSettings::default();
    if let Some(r) = raw("grace") {
        supervise.grace = r.parse_last(parse_duration)?.unwrap_or(supervise.grace);
    }
    if let Some(r) = raw("pre-stop-delay") {
        supervise.pre_stop_delay = r.parse_last(parse_duration)?.unwrap_or_default();
    }
    if let Some(r) = raw("signal-group") {
        supervise.signal_group = r.parse_last(parse_bool)?.unwrap_or(false);
    }
    if let Some(r) = raw("rewrite") {
        for v in &r.values {
            supervise
                .rewrites
                .push(parse_rewrite(v).map_err(|e| r.error(e))?);
        }
    }
    let mut remap_exit = Vec::new();
    if let Some(r) = raw("remap-exit") {
        for v in &r.values {
            remap_exit.push(parse_remap(v).map_err(|e| r.error(e))?);
        }
    }
    let mut render = RenderSettings::default();
    if let Some(r) = raw("template") {
        for v in &r.values {
            let (src, dest) = split_pair(v, "SRC:DEST").map_err(|e| r.error(e))?;
            render.templates.push(PathPair {
                src: src.into(),
                dest: dest.into(),
            });
        }
    }
    if let Some(r) = raw("ini") {
        for v in &r.values {
            let (prefix, dest) = split_pair(v, "PREFIX:DEST").map_err(|e| r.error(e))?;
            render.ini.push(IniTarget {
                prefix: prefix.to_string(),
                dest: dest.into(),
            });
        }
    }
    if let Some(r) = raw("secrets-dir") {
        if let Some(dir) = r.last() {
            render.secrets_dir = dir.into();
        }
    }
    if let Some(r) = raw("check") {
        render.check = r.parse_last(parse_bool)?.unwrap_or(false);
    }

    // Only looked at when given: start-up pays nothing for VM mode.
    let vm = if vm_given {
        vm_settings(&mut raw)?
    } else {
        VmSettings::default()
    };

    let mut log = LogSettings::default();
    if let Some(level) = &env_options.log {
        log.level = parse_level(level).map_err(|e| config(format!("ENVINIT_LOG: {e}")))?;
    }
    if let Some(format) = &env_options.log_format {
        log.json = match format.trim().to_ascii_lowercase().as_str() {
            "text" => false,
            "json" => true,
            _ => {
                return Err(config(format!(
                    "ENVINIT_LOG_FORMAT: {format:?} is not text or json"
                )));
            }
        };
    }

    let start_up = match start_up_given {
        true => Some(Box::new(start_up(&mut raw, !command.is_empty())?)),
        false => None,
    };
    let probing = start_up.as_ref().is_some_and(|s| s.probe.is_some());
    let follow = match follow_given {
        true => follow_settings(&mut raw)?,
        false => FollowSettings::default(),
    };

    if command.is_empty() && !render.check && !probing {
        return Err(usage(
            "no command given: envinit [OPTIONS] [--] COMMAND [ARG...]".into(),
        ));
    }
    Ok(Request::Run(Box::new(Settings {
        command,
        supervise,
        remap_exit,
        render,
        log,
        start_up,
        follow,
        vm,
        unknown_variables,
    })))
}

/// `--stdout`, `--stderr`, `--log-prefix`, `--rotate-wait` (only parsed
/// when one is given).
fn follow_settings(
    raw: &mut impl FnMut(&'static str) -> Option<Raw>,
) -> Result<FollowSettings, SettingsError> {
    let mut follow = FollowSettings::default();
    for (name, files) in [
        ("stdout", &mut follow.stdout),
        ("stderr", &mut follow.stderr),
    ] {
        if let Some(r) = raw(name) {
            for v in &r.values {
                files.push(follow::parse_path(v).map_err(|e| r.error(e))?);
            }
        }
    }
    if let Some(r) = raw("log-prefix") {
        follow.prefix = r.parse_last(parse_bool)?.unwrap_or(false);
    }
    if let Some(r) = raw("rotate-wait") {
        if let Some(wait) = r.parse_last(parse_duration)? {
            follow.rotate_wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        }
    }
    Ok(follow)
}

/// `--user`, `--export-file-var`, `--wait`, `--wait-timeout`, `--probe`,
/// `--probe-timeout`. `--probe` from the command line runs no command;
/// `ENVINIT_PROBE` only applies when no command is given.
fn start_up(
    raw: &mut impl FnMut(&'static str) -> Option<Raw>,
    has_command: bool,
) -> Result<StartUp, SettingsError> {
    let mut launch = LaunchSettings::default();
    if let Some(r) = raw("user") {
        launch.user = r.last().map(String::from);
    }
    if let Some(r) = raw("export-file-var") {
        for v in &r.values {
            let name = launch::parse_export_name(v).map_err(|e| r.error(e))?;
            if !launch.export_file_vars.contains(&name) {
                launch.export_file_vars.push(name);
            }
        }
    }
    let (wait, _) = checks(raw("wait"), raw("wait-timeout"), Checks::wait_default())?;
    let (probe, probe_cli) = checks(raw("probe"), raw("probe-timeout"), Checks::probe_default())?;
    if probe_cli && has_command {
        return Err(usage(
            "--probe runs no command: give either --probe URL or a command".into(),
        ));
    }
    let probe = (!probe.targets.is_empty() && (probe_cli || !has_command)).then_some(probe);
    Ok(StartUp {
        launch,
        wait,
        probe,
    })
}

/// `--wait`/`--probe` URLs and their timeout over `checks`' defaults; true
/// when the URLs came from the command line.
fn checks(
    urls: Option<Raw>,
    timeout: Option<Raw>,
    mut checks: Checks,
) -> Result<(Checks, bool), SettingsError> {
    if let Some(t) = &timeout {
        if let Some(text) = t.last() {
            checks.timeout = parse_duration(text).map_err(|e| t.error(e))?;
        }
    }
    let Some(urls) = urls else {
        return Ok((checks, false));
    };
    for url in &urls.values {
        checks
            .targets
            .push(wait::parse(url).map_err(|e| urls.error(e))?);
    }
    Ok((checks, matches!(urls.source, Source::Cli)))
}

/// The VM options (`--vm`, `--vm-exit`, `--image-config`).
fn vm_settings(
    raw: &mut impl FnMut(&'static str) -> Option<Raw>,
) -> Result<VmSettings, SettingsError> {
    let mut vm = VmSettings::default();
    if let Some(r) = raw("vm") {
        if let Some(v) = r.last() {
            vm.mode = vm::parse_mode(v).map_err(|e| r.error(e))?;
        }
    }
    if let Some(r) = raw("vm-exit") {
        if let Some(v) = r.last() {
            vm.exit = vm::parse_exit(v).map_err(|e| r.error(e))?;
        }
    }
    if let Some(r) = raw("image-config") {
        vm.image_config = r.last().map(PathBuf::from);
    }
    Ok(vm)
}

/// Parses `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || format!("{text:?} is not a duration (write e.g. 500ms, 10s, 2m or 1h)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    };
    millis.map(Duration::from_millis).ok_or_else(bad)
}

/// Writes a duration as [`parse_duration`] reads it: `10s`, `1500ms`.
/// (Not `Debug`, which pulls float formatting into the binary.)
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Parses `1/0`, `true/false`, `yes/no`, `on/off` in any case.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean (write 1/0, true/false, yes/no or on/off)"
        )),
    }
}

/// Parses `FROM:TO` where TO may be `none`.
pub fn parse_rewrite(text: &str) -> Result<(i32, Option<i32>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not FROM:TO (e.g. TERM:QUIT, or TERM:none to drop)"))?;
    let from = signals::parse(from)?;
    let to = if to.trim().eq_ignore_ascii_case("none") {
        None
    } else {
        Some(signals::parse(to)?)
    };
    Ok((from, to))
}

/// Parses `CODE:NEW` or `CODE` (meaning `CODE:0`).
pub fn parse_remap(text: &str) -> Result<(u8, u8), String> {
    let code = |t: &str| -> Result<u8, String> {
        t.trim()
            .parse()
            .map_err(|_| format!("{t:?} is not an exit code 0-255 (write e.g. 143:0)"))
    };
    match text.split_once(':') {
        Some((from, to)) => Ok((code(from)?, code(to)?)),
        None => Ok((code(text)?, 0)),
    }
}

fn split_pair<'a>(text: &'a str, shape: &str) -> Result<(&'a str, &'a str), String> {
    match text.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => Err(format!("{text:?} is not {shape}")),
    }
}

fn parse_level(text: &str) -> Result<Option<tracing::Level>, String> {
    use tracing::Level;
    Ok(Some(match text.trim().to_ascii_lowercase().as_str() {
        "error" => Level::ERROR,
        "warn" | "warning" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        "off" | "none" => return Ok(None),
        _ => {
            return Err(format!(
                "{text:?} is not error, warn, info, debug, trace or off"
            ));
        }
    }))
}

impl Settings {
    /// The code envinit exits with for the child's `code`, after `--remap-exit`.
    pub fn final_code(&self, code: u8) -> u8 {
        self.remap_exit
            .iter()
            .find(|(from, _)| *from == code)
            .map_or(code, |(_, to)| *to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(words(args), env)? {
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
        assert!(s.remap_exit.is_empty());
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
        assert_eq!(s.remap_exit, vec![(143, 0), (1, 2)]);
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
    fn variables_are_matched_to_options_in_place() {
        for option in VALUE_OPTIONS.iter().chain(BOOL_OPTIONS).chain(ENV_ONLY) {
            assert_eq!(variable_option(&env_name(option)), Some(*option));
        }
        for key in [
            "ENVINIT_GRAC",
            "ENVINIT_grace",
            "ENVINIT_PRE-STOP-DELAY",
            "GRACE",
            "ENVINIT_",
        ] {
            assert_eq!(variable_option(key), None, "{key}");
        }
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
        assert!(e.message.contains("--stdout"), "{}", e.message);
        let e = run(&["app"], &[("ENVINIT_STDERR", "..")]).unwrap_err();
        assert_eq!(e.code, exit::CONFIG);
        assert!(e.message.contains("ENVINIT_STDERR"), "{}", e.message);
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
        assert!(e.message.contains("--rotate-wait"), "{}", e.message);
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
        assert_eq!(s.remap_exit, vec![(143, 0)]);
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
            assert!(err.message.starts_with(env.0), "{err}");
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
        assert!(e.message.starts_with("ENVINIT_WAIT: "), "{e}");
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
            assert!(e.message.contains(why), "{args:?}: {e}");
            assert!(!e.message.contains('\n'));
        }
        let e = run(&["app"], &[("ENVINIT_EXPORT_FILE_VAR", "A, B_FILE")]).unwrap_err();
        assert_eq!(e.code, 78, "{e}");
        assert!(
            e.message
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
                e.message,
                "--export-file-vars was replaced by --export-file-var NAME (repeatable): name the variables to export, e.g. --export-file-var MYSQL_PASSWORD (see envinit --help)"
            );
        }
        let e = run(&["app"], &[("ENVINIT_EXPORT_FILE_VARS", "1")]).unwrap_err();
        assert_eq!(e.code, 78, "{e}");
        assert_eq!(
            e.message,
            "ENVINIT_EXPORT_FILE_VARS was replaced by ENVINIT_EXPORT_FILE_VAR (a list): name the variables to export, e.g. ENVINIT_EXPORT_FILE_VAR=MYSQL_PASSWORD,API_TOKEN"
        );
    }

    #[test]
    fn check_needs_no_command() {
        let s = run(&["--check"], &[]).unwrap();
        assert!(s.render.check && s.command.is_empty());
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(words(&["-h"]), vec![]), Ok(Request::Help));
        assert_eq!(parse(words(&["--help", "x"]), vec![]), Ok(Request::Help));
        assert_eq!(parse(words(&["-V"]), vec![]), Ok(Request::Version));
    }

    #[test]
    fn environ_scan_finds_the_prefixed_variables() {
        // The test runner's own environment: PATH is there, no prefix is.
        let found = environ_with_prefix(b"PATH");
        assert!(
            found
                .iter()
                .any(|(k, v)| k == "PATH" && Some(v.clone()) == std::env::var_os("PATH"))
        );
        assert!(environ_with_prefix(b"NO_SUCH_PREFIX_FOR_ENVINIT_").is_empty());
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let vars = vec![
            (OsString::from("ENVINIT_GRACE"), OsString::from("")),
            ("PATH".into(), "/bin".into()),
        ];
        assert!(envinit_vars(vars.into_iter()).unwrap().is_empty());
    }

    #[test]
    fn non_unicode_variables_outside_the_prefix_are_skipped() {
        use std::os::unix::ffi::OsStringExt;
        let vars = vec![
            (OsString::from("JUNK"), OsString::from_vec(vec![0xff, 0xfe])),
            (OsString::from("ENVINIT_GRACE"), OsString::from("1s")),
        ];
        assert_eq!(
            envinit_vars(vars.into_iter()).unwrap(),
            vec![("ENVINIT_GRACE".into(), "1s".into())]
        );
        let bad = vec![(
            OsString::from("ENVINIT_GRACE"),
            OsString::from_vec(vec![0xff]),
        )];
        assert_eq!(envinit_vars(bad.into_iter()).unwrap_err().code, 78);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "-1s",
            "1.5s",
            "10 sec",
            "1d",
            "99999999999999999999h",
            "18446744073709551615h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_as_they_parse() {
        for text in ["0s", "10s", "1500ms", "120s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn remaps() {
        assert_eq!(parse_remap("143"), Ok((143, 0)));
        assert_eq!(parse_remap("143:1"), Ok((143, 1)));
        assert!(parse_remap("256").is_err());
        let s = run(
            &["--remap-exit", "143", "--remap-exit", "143:9", "app"],
            &[],
        )
        .unwrap();
        assert_eq!(s.final_code(143), 0);
        assert_eq!(s.final_code(1), 1);
    }
}
