//! Options: the words envinit is told, from its command line and its
//! `ENVINIT_*` variables, described once.
//!
//! # What it owns
//!
//! - The option table, [`TABLE`]: one row per option (long name, short
//!   letter, whether it takes a value, whether it repeats, whether it is a
//!   command-line option, a variable or both, its help line). `--help` is
//!   written from it ([`help`]); a unit test compares it with
//!   docs/options.md, so neither can drift from the table.
//! - The command-line lexer ([`lex`]): options stop at the first word that
//!   is not an option, or at `--`; the command's own flags are never taken.
//! - Reading the `ENVINIT_*` variables, once ([`from_variables`]): the
//!   variable of `--some-name` is `ENVINIT_SOME_NAME`.
//! - The value syntax phases share: durations, booleans, `A:B` pairs.
//!
//! # What it does not do
//!
//! It does not know what an option means. Each phase owns its options type
//! and reads its own options out of [`Given`] by name, with the parsers of
//! its values; `settings` only calls them in turn. Adding an option is one
//! row here, a field in its phase's type and the lines that read it there.
//!
//! # What it promises
//!
//! - The command line wins over a variable; a repeatable option given on
//!   the command line replaces the variable's whole list.
//! - A bad command line is a usage error (exit 64) naming the option; a bad
//!   variable is a configuration error (exit 78) naming the variable. Both
//!   say how to fix it.
//! - Only the `ENVINIT_*` variables present are looked at, and only the
//!   options given are looked up: a start without options pays for one
//!   pass over argv and one over the environment's names.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::exit::{self, Failure};

/// Where an option can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `--name` and `ENVINIT_NAME`.
    Both,
    /// Only on the command line (`--help`, `--version`).
    CommandLine,
    /// Only as a variable (`ENVINIT_LOG`): listed after the options.
    Variable,
}

/// The part of `--help` an option is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// How the child is supervised.
    Supervision,
    /// Config files.
    Config,
    /// Config rendered again while the app runs.
    Reload,
    /// User, secrets as variables, dependencies.
    StartUp,
    /// Several processes.
    Processes,
    /// Followed log files.
    LogFiles,
    /// `--probe`.
    HealthCheck,
    /// VM mode.
    Vm,
    /// Help and version.
    Other,
    /// Variables only, described in the closing text of `--help`.
    Environment,
}

impl Section {
    /// The heading `--help` prints before the section's options.
    fn heading(self) -> &'static str {
        match self {
            Section::Supervision => "Supervision:",
            Section::Config => "Config:",
            Section::Reload => "Reload (with --template or --ini; docs/templates.md):",
            Section::StartUp => "Start-up:",
            Section::Processes => "Several processes (docs/supervision.md):",
            Section::LogFiles => "Log files:",
            Section::HealthCheck => "Health check (runs no command):",
            Section::Vm => "VM mode (envinit as a microVM's init, docs/vm.md):",
            Section::Other => "Other:",
            Section::Environment => "",
        }
    }
}

/// One option, described once.
#[derive(Debug, PartialEq, Eq)]
pub struct Opt {
    /// The long name: `--grace`, and `ENVINIT_GRACE` (upper-snake case).
    pub long: &'static str,
    /// The short letter (`-t`), if any.
    pub short: Option<u8>,
    /// What the value looks like (`DURATION`); `None` for a flag, which
    /// means on when given alone and takes `=BOOL` otherwise.
    pub value: Option<&'static str>,
    /// Repeatable on the command line; a comma-separated list as a
    /// variable.
    pub repeatable: bool,
    /// Command line, variable, or both.
    pub reach: Reach,
    /// Where `--help` lists it.
    pub section: Section,
    /// Its `--help` text, already wrapped (`\n` between lines).
    pub help: &'static str,
}

const fn opt(
    long: &'static str,
    value: Option<&'static str>,
    section: Section,
    help: &'static str,
) -> Opt {
    Opt {
        long,
        short: None,
        value,
        repeatable: false,
        reach: Reach::Both,
        section,
        help,
    }
}

impl Opt {
    const fn short(mut self, letter: u8) -> Opt {
        self.short = Some(letter);
        self
    }

    const fn repeatable(mut self) -> Opt {
        self.repeatable = true;
        self
    }

    const fn reach(mut self, reach: Reach) -> Opt {
        self.reach = reach;
        self
    }

    /// Is `key` this option's variable (`ENVINIT_` and the upper-snake
    /// name)? Compared in place: no string is built.
    pub fn is_variable(&self, key: &str) -> bool {
        self.reach != Reach::CommandLine
            && key.strip_prefix("ENVINIT_").is_some_and(|name| {
                name.len() == self.long.len()
                    && name.bytes().zip(self.long.bytes()).all(|(k, o)| {
                        k == match o {
                            b'-' => b'_',
                            _ => o.to_ascii_uppercase(),
                        }
                    })
            })
    }

    /// `ENVINIT_NAME`.
    pub fn variable(&self) -> String {
        format!(
            "ENVINIT_{}",
            self.long.to_ascii_uppercase().replace('-', "_")
        )
    }
}

use Section::{Config, HealthCheck, LogFiles, Other, Processes, Reload, StartUp, Supervision, Vm};

/// Every option and variable of envinit, in `--help` order.
pub const TABLE: &[Opt] = &[
    opt(
        "grace",
        Some("DURATION"),
        Supervision,
        "time the whole process tree gets to exit after a\n\
         stop signal before SIGKILL [default: 8s, inside\n\
         Docker's and Swarm's 10 s stop timeout]",
    ),
    opt(
        "pre-stop-delay",
        Some("DURATION"),
        Supervision,
        "hold the first stop signal this long before\n\
         forwarding it [default: 0s]",
    ),
    opt(
        "signal-group",
        None,
        Supervision,
        "forward signals to the child's process group",
    ),
    opt(
        "rewrite",
        Some("FROM:TO"),
        Supervision,
        "forward signal FROM as TO (TO=none drops it),\n\
         e.g. TERM:QUIT; repeatable",
    )
    .repeatable(),
    opt(
        "remap-exit",
        Some("CODE[:NEW]"),
        Supervision,
        "exit NEW (default 0) when the child exits CODE,\n\
         e.g. 143; repeatable",
    )
    .repeatable(),
    opt(
        "template",
        Some("SRC:DEST"),
        Config,
        "render template file or directory SRC to DEST;\n\
         repeatable",
    )
    .short(b't')
    .repeatable(),
    opt(
        "ini",
        Some("PREFIX:DEST"),
        Config,
        "write variables PREFIX<key> as `key = value`\n\
         lines of DEST; repeatable",
    )
    .repeatable(),
    opt(
        "secrets-dir",
        Some("DIR"),
        Config,
        "where {{ secrets.NAME }} reads [default: /run/secrets]",
    ),
    opt(
        "check",
        None,
        Config,
        "render in memory, report problems, write and run\n\
         nothing (exit 0 or 78)",
    ),
    opt(
        "diff",
        None,
        Config,
        "with --check (implied): print what a start or a\n\
         reload would change as a unified diff, secrets\n\
         masked; exit 0 if nothing, 1 if something would",
    ),
    opt(
        "reload-signal",
        Some("SIGNAL"),
        Reload,
        "render again on this signal instead of forwarding\n\
         it (none: forward it) [default: HUP]",
    ),
    opt(
        "app-reload-signal",
        Some("SIGNAL"),
        Reload,
        "what the app gets when a reload changed a file\n\
         [default: the reload signal, after --rewrite]",
    ),
    opt(
        "watch",
        None,
        Reload,
        "also reload when a template, secret or X_FILE file\n\
         changes (inotify; a burst is one reload)",
    ),
    opt(
        "watch-limits",
        Some("DURATION"),
        Reload,
        "read the container's memory and CPU limits again\n\
         this often, and reload when they changed",
    ),
    opt(
        "user",
        Some("USER[:GROUP]"),
        StartUp,
        "run COMMAND as this user (names or numeric ids,\n\
         from /etc/passwd and /etc/group); envinit stays root",
    )
    .short(b'u'),
    opt(
        "export-file-var",
        Some("NAME"),
        StartUp,
        "give COMMAND NAME=<content of the file NAME_FILE\n\
         names> and no NAME_FILE, as file_env does; an\n\
         unreadable file is an error; repeatable",
    )
    .repeatable(),
    opt(
        "wait",
        Some("URL"),
        StartUp,
        "start COMMAND only once URL is ready: tcp://HOST:PORT,\n\
         http://HOST[:PORT]/PATH (2xx), unix:///PATH,\n\
         file:///PATH; repeatable, all checked at once",
    )
    .repeatable(),
    opt(
        "wait-timeout",
        Some("DURATION"),
        StartUp,
        "give up (exit 69) after this long [default: 60s]",
    ),
    opt(
        "procfile",
        Some("FILE"),
        Processes,
        "run the processes of FILE (NAME: COMMAND lines)\n\
         in order; COMMAND, if any, is one more: main",
    ),
    opt(
        "restart",
        Some("NAME"),
        Processes,
        "restart process NAME when it ends (after 1 s,\n\
         doubling to 30 s); repeatable",
    )
    .repeatable(),
    opt(
        "proc-user",
        Some("NAME=USER[:GROUP]"),
        Processes,
        "run process NAME as this user [default: --user];\n\
         repeatable",
    )
    .repeatable(),
    opt(
        "proc-stop-signal",
        Some("NAME=SIGNAL"),
        Processes,
        "stop process NAME with SIGNAL [default: the\n\
         one received]; repeatable",
    )
    .repeatable(),
    opt(
        "proc-reload-signal",
        Some("NAME=SIGNAL"),
        Processes,
        "after a reload changed a file, send NAME SIGNAL\n\
         (none: nothing); once one is named, only named\n\
         processes are told; repeatable",
    )
    .repeatable(),
    opt(
        "proc-export-file-var",
        Some("NAME=VAR[+VAR...]"),
        Processes,
        "give process NAME these --export-file-var variables;\n\
         once one is named, the others get none; repeatable",
    )
    .repeatable(),
    opt(
        "proc-wait",
        Some("NAME=URL"),
        Processes,
        "start process NAME once URL is ready (the forms of\n\
         --wait); repeatable",
    )
    .repeatable(),
    opt(
        "proc-signals",
        Some("NAME=SIGNAL[+SIGNAL...]"),
        Processes,
        "forward only these signals to process NAME\n\
         (FROM:TO sends FROM as TO; none: none); repeatable",
    )
    .repeatable(),
    opt(
        "proc-prefix",
        None,
        Processes,
        "prefix each line of the processes with its name",
    ),
    opt(
        "stdout",
        Some("FILE"),
        LogFiles,
        "copy the lines the app writes to FILE to stdout,\n\
         following it like tail -F; repeatable",
    )
    .repeatable(),
    opt(
        "stderr",
        Some("FILE"),
        LogFiles,
        "the same, to stderr; repeatable",
    )
    .repeatable(),
    opt(
        "log-prefix",
        None,
        LogFiles,
        "start each copied line with the file's name",
    ),
    opt(
        "rotate-wait",
        Some("DURATION"),
        LogFiles,
        "after a rotation, read the old file on until it\n\
         has been quiet this long [default: 5s]",
    ),
    opt(
        "probe",
        Some("URL"),
        HealthCheck,
        "check URL once (same forms as --wait); exit 0 if\n\
         all are ready, 1 if not; repeatable",
    )
    .repeatable(),
    opt(
        "probe-timeout",
        Some("DURATION"),
        HealthCheck,
        "bound on the probe [default: 2s]",
    ),
    opt(
        "vm",
        Some("auto|on|off"),
        Vm,
        "mount /proc, /sys, /dev... and power off at the\n\
         end; auto: when PID 1 and /proc is not mounted",
    ),
    opt(
        "vm-exit",
        Some("poweroff|reboot"),
        Vm,
        "how the machine ends [default: poweroff]",
    ),
    opt(
        "image-config",
        Some("FILE"),
        Vm,
        "run what `docker image inspect --format\n\
         '{{json .Config}}'` printed [default in VM mode:\n\
         /etc/envinit/image.json when it exists]",
    ),
    opt(
        "net",
        Some("ITEM"),
        Vm,
        "network: IFACE:ADDR/PREFIX, IFACE:gw=ADDR,\n\
         IFACE:mtu=N, IFACE:up, dns=ADDR, search=DOMAIN;\n\
         repeatable",
    )
    .repeatable(),
    opt(
        "mount",
        Some("SRC:DEST[:TYPE[:OPTS]]"),
        Vm,
        "mount a volume (TYPE ext4 by default) at DEST;\n\
         repeatable",
    )
    .repeatable(),
    opt(
        "secrets-disk",
        Some("DEVICE[:TYPE]"),
        Vm,
        "mount this disk read-only at /run/secrets (root\n\
         only); its .env file adds variables",
    ),
    opt("help", None, Other, "print this help")
        .short(b'h')
        .reach(Reach::CommandLine),
    opt("version", None, Other, "print the version")
        .short(b'V')
        .reach(Reach::CommandLine),
    opt(
        "log",
        Some("error|warn|info|debug|trace|off"),
        Section::Environment,
        "",
    )
    .reach(Reach::Variable),
    opt("log-format", Some("text|json"), Section::Environment, "").reach(Reach::Variable),
    opt("hostname", Some("NAME"), Section::Environment, "").reach(Reach::Variable),
];

/// Options that were replaced: the old name, then what to write instead
/// on the command line and as a variable. Using one is an error that says
/// so (64 on the command line, 78 as a variable).
const REPLACED: &[(&str, &str, &str)] = &[(
    "export-file-vars",
    "--export-file-var NAME (repeatable): name the variables to export, e.g. --export-file-var MYSQL_PASSWORD",
    "ENVINIT_EXPORT_FILE_VAR (a list): name the variables to export, e.g. ENVINIT_EXPORT_FILE_VAR=MYSQL_PASSWORD,API_TOKEN",
)];

/// The error for `--name`, which is no option: what replaced it, if it
/// was one (out of line: a start's common path never comes here).
#[cold]
#[inline(never)]
fn unknown_option(name: &str) -> Failure {
    match REPLACED.iter().find(|(old, _, _)| *old == name) {
        Some((old, new, _)) => usage(format!("--{old} was replaced by {new}")),
        None => usage(format!("unknown option --{name}")),
    }
}

/// The error when `key`, an `ENVINIT_*` name of no option, is the variable
/// of a replaced option (out of line, as [`unknown_option`]).
#[cold]
#[inline(never)]
fn replaced_variable(key: &str) -> Result<(), Failure> {
    let old = REPLACED.iter().find(|(old, _, _)| {
        key.strip_prefix("ENVINIT_") == Some(&old.to_ascii_uppercase().replace('-', "_"))
    });
    match old {
        Some((_, _, new)) => Err(Failure::new(
            exit::CONFIG,
            format!("{key} was replaced by {new}"),
        )),
        None => Ok(()),
    }
}

/// The row of `--long`, if there is one.
pub fn find(long: &str) -> Option<&'static Opt> {
    TABLE
        .iter()
        .find(|o| o.long == long && o.reach != Reach::Variable)
}

/// The line printed after a usage error (exit 64), so that people and
/// scripts find the word "usage".
pub const USAGE_LINE: &str = "usage: envinit [OPTIONS] [--] COMMAND [ARG...]";

const HELP_HEAD: &str = "\
envinit: render config from the environment, then run COMMAND as PID 1

Usage: envinit [OPTIONS] [--] COMMAND [ARG...]
       envinit --check [--diff] [OPTIONS]
       envinit --probe URL [--probe URL...] [--probe-timeout DURATION]

Options stop at the first word that is not an option: the command's own
flags are passed on untouched. Each option can also be set by a variable
ENVINIT_<NAME> (e.g. ENVINIT_GRACE=30s); the command line wins.
";

const HELP_TAIL: &str = "
Environment only: ENVINIT_LOG=error|warn|info|debug|trace|off (default warn:
a clean run prints nothing), ENVINIT_LOG_FORMAT=text|json, ENVINIT_HOSTNAME
(VM mode). Durations: 500ms, 10s, 2m, 1h (a bare number is
seconds). Booleans: 1/0, true/false, yes/no, on/off.
Exit codes: the child's code; 128+N if it was killed by signal N; 64 usage,
69 dependency not ready, 71 OS error, 78 config error, 126 not executable,
127 not found.
Docs: docs/options.md, docs/templates.md, docs/exit-codes.md
";

/// The column where the help text of each option starts.
const HELP_COLUMN: usize = 30;

/// The `--help` text, written from [`TABLE`].
pub fn help() -> String {
    let mut out = String::from(HELP_HEAD);
    let mut section = None;
    for opt in TABLE.iter().filter(|o| o.reach != Reach::Variable) {
        if section != Some(opt.section) {
            section = Some(opt.section);
            out.push('\n');
            out.push_str(opt.section.heading());
        }
        let short = match opt.short {
            Some(letter) => format!("-{}, ", char::from(letter)),
            None => "    ".to_string(),
        };
        let value = match opt.value {
            Some(value) => format!(" {value}"),
            None if opt.reach == Reach::CommandLine => String::new(),
            None => "[=BOOL]".to_string(),
        };
        let usage = format!("\n  {short}--{}{value}", opt.long);
        out.push_str(&usage);
        // The usage and its text on one line when there is room.
        let mut column = usage.len() - 1;
        for (i, line) in opt.help.lines().enumerate() {
            if i > 0 || column >= HELP_COLUMN {
                out.push('\n');
                column = 0;
            }
            while column < HELP_COLUMN {
                out.push(' ');
                column += 1;
            }
            out.push_str(line.trim_start());
        }
    }
    out.push('\n');
    out.push_str(HELP_TAIL);
    out
}

/// Where a value came from, for error messages and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line: errors are usage errors (64).
    CommandLine,
    /// An `ENVINIT_*` variable: errors are configuration errors (78).
    Variable,
}

/// One option's values as given, the command line's or the variable's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// The option.
    pub opt: &'static Opt,
    /// Its values, in order (one for a single-value option given once; a
    /// flag given alone on the command line is `true`).
    pub values: Vec<String>,
    /// Where they came from.
    pub source: Source,
}

impl Raw {
    /// A problem with this option's value, as the error its source earns:
    /// `--name: problem (see envinit --help)`, exit 64, or
    /// `ENVINIT_NAME: problem`, exit 78.
    pub fn error(&self, problem: impl std::fmt::Display) -> Failure {
        match self.source {
            Source::CommandLine => usage(format!("--{}: {problem}", self.opt.long)),
            Source::Variable => {
                Failure::new(exit::CONFIG, format!("{}: {problem}", self.opt.variable()))
            }
        }
    }

    /// The last value (a single-value option given several times: the
    /// last one counts).
    pub fn last(&self) -> Option<&str> {
        self.values.last().map(String::as_str)
    }

    /// The last value, read by `parse`; `None` when there is none.
    pub fn parse_last<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Failure> {
        self.last()
            .map(parse)
            .transpose()
            .map_err(|e| self.error(e))
    }

    /// Every value, read by `parse`, in order.
    pub fn parse_each<T>(
        &self,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, Failure> {
        // A plain loop: `collect` into a `Result` costs ~1 KiB of binary
        // per value type.
        let mut parsed = Vec::with_capacity(self.values.len());
        for value in &self.values {
            match parse(value) {
                Ok(v) => parsed.push(v),
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(parsed)
    }
}

/// The options given in this start, the command line's over the
/// variables'. Phases take out their own with [`Given::take`].
#[derive(Debug, Default)]
pub struct Given(Vec<Raw>);

impl Given {
    /// The command line's options over the variables' (an option on the
    /// command line hides its variable).
    pub fn new(command_line: Vec<Raw>, variables: Vec<Raw>) -> Given {
        let mut all = command_line;
        for raw in variables {
            if !all.iter().any(|r| std::ptr::eq(r.opt, raw.opt)) {
                all.push(raw);
            }
        }
        Given(all)
    }

    /// Takes out the values of `--long`, if it was given.
    pub fn take(&mut self, long: &str) -> Option<Raw> {
        let i = self.0.iter().position(|r| r.opt.long == long)?;
        Some(self.0.swap_remove(i))
    }

    /// Whether no option is left (a start without options: the common
    /// case, checked before looking up the rarer ones).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an option of `section` was given (and not taken yet).
    pub fn in_section(&self, section: Section) -> bool {
        self.0.iter().any(|r| r.opt.section == section)
    }

    /// Whether any of `longs` was given (and not taken yet). Inlined: a
    /// start without options pays a length check per call.
    #[inline(always)]
    pub fn any(&self, longs: &[&str]) -> bool {
        for raw in &self.0 {
            if longs.contains(&raw.opt.long) {
                return true;
            }
        }
        false
    }

    /// Whether `--long` was given on the command line (not taken yet).
    pub fn on_command_line(&self, long: &str) -> bool {
        self.0
            .iter()
            .any(|r| r.opt.long == long && r.source == Source::CommandLine)
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Lexed {
    /// Run: the options given, and the command (possibly empty).
    Run {
        /// The options, in the order first given, values in order.
        options: Vec<Raw>,
        /// The command and its arguments, byte-exact.
        command: Vec<OsString>,
    },
    /// `--help` or `-h`.
    Help,
    /// `--version` or `-V`.
    Version,
}

/// A usage error (exit 64) with the pointer to `--help`.
pub fn usage(message: String) -> Failure {
    Failure::new(exit::USAGE, format!("{message} (see envinit --help)"))
}

/// Reads the command line's words (without argv\[0\]): envinit's options up
/// to the first word that is not one (or `--`), then the command.
pub fn lex(args: Vec<OsString>) -> Result<Lexed, Failure> {
    let mut options: Vec<Raw> = Vec::new();
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
        let (opt, inline) = split_option(text)?;
        match opt.long {
            "help" => return Ok(Lexed::Help),
            "version" => return Ok(Lexed::Version),
            _ => {}
        }
        let value = match (opt.value, inline) {
            (_, Some(value)) => value,
            (None, None) => "true".to_string(),
            (Some(_), None) => words
                .next()
                .ok_or_else(|| usage(format!("--{} needs a value", opt.long)))?
                .into_string()
                .map_err(|_| usage(format!("the value of --{} is not valid UTF-8", opt.long)))?,
        };
        match options.iter_mut().find(|r| std::ptr::eq(r.opt, opt)) {
            Some(raw) => raw.values.push(value),
            None => options.push(Raw {
                opt,
                values: vec![value],
                source: Source::CommandLine,
            }),
        }
    }
    command.extend(words);
    Ok(Lexed::Run { options, command })
}

/// Splits `--name=value`, `--name`, `-t value`, `-tvalue`, `-h` into the
/// option's row and the value written in the same word.
fn split_option(text: &str) -> Result<(&'static Opt, Option<String>), Failure> {
    if let Some(long) = text.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (long, None),
        };
        let opt = find(name).ok_or_else(|| unknown_option(name))?;
        return Ok((opt, inline));
    }
    let short = &text[1..];
    let (letter, rest) = short.split_at(short.chars().next().map_or(0, char::len_utf8));
    let opt = TABLE
        .iter()
        .find(|o| o.short.is_some_and(|s| letter.as_bytes() == [s]))
        .ok_or_else(|| usage(format!("unknown option -{letter}")))?;
    Ok((opt, (!rest.is_empty()).then(|| rest.to_string())))
}

/// How many of `args` are envinit's leading options (with their values,
/// and the `--` that ends them, if any): the command starts after them.
/// Words that are not valid options end the count where [`lex`] would
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
        let Some(Ok((opt, inline))) = word.to_str().map(split_option) else {
            return i;
        };
        i += 1;
        if inline.is_none() && opt.value.is_some() {
            i += 1;
        }
    }
    args.len()
}

/// The last value given to `--long` among the leading options of `args`
/// (before the command line is read as a whole: for VM mode's phase 0).
pub fn leading_value(args: &[OsString], long: &str) -> Option<String> {
    let options = &args[..option_words(args).min(args.len())];
    let mut found = None;
    let mut words = options.iter();
    while let Some(word) = words.next() {
        let Some(Ok((opt, inline))) = word.to_str().map(split_option) else {
            continue;
        };
        let value = match inline {
            Some(v) => Some(v),
            None if opt.value.is_some() => words.next().and_then(|w| w.to_str()).map(String::from),
            None => None,
        };
        if opt.long == long {
            found = value.or(found);
        }
    }
    found
}

/// This process's argument words, without argv\[0\].
pub fn process_args() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// This process's `ENVINIT_*` variables, raw (see [`from_variables`]).
pub fn process_variables() -> Vec<(OsString, OsString)> {
    environ_with_prefix(b"ENVINIT_")
}

/// The environment entries whose name starts with `prefix`, found in one
/// pass over the C library's `environ` without copying the others. (Copying
/// the whole environment with `std::env::vars_os`, or one `getenv` per
/// option, costs more than the rest of envinit's start-up.)
fn environ_with_prefix(prefix: &[u8]) -> Vec<(OsString, OsString)> {
    use std::ffi::{CStr, c_char};
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
                        OsStr::from_bytes(key).to_os_string(),
                        OsStr::from_bytes(value).to_os_string(),
                    ));
                }
            }
            entry = entry.add(1);
        }
    }
    found
}

/// What the `ENVINIT_*` variables give: the options they set, and the
/// names that match no option (likely typos, warned about once logging is
/// up).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Variables {
    /// The options set, one [`Raw`] each: a list option's items split at
    /// commas and trimmed (empty items dropped), any other value trimmed.
    pub options: Vec<Raw>,
    /// `ENVINIT_*` names that are no option's variable.
    pub unknown: Vec<String>,
}

/// Reads the `ENVINIT_*` variables among `vars` (others are skipped
/// without being decoded: a container may hold variables that are not
/// Unicode). They must be UTF-8; empty ones count as unset. The known ones
/// go through envy once, into a map the table reads.
pub fn from_variables(vars: Vec<(OsString, OsString)>) -> Result<Variables, Failure> {
    let config = |message: String| Failure::new(exit::CONFIG, message);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
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
        if value.is_empty() {
            continue;
        }
        match TABLE.iter().any(|o| o.is_variable(&key)) {
            true => known.push((key, value)),
            false => {
                replaced_variable(&key)?;
                unknown.push(key);
            }
        }
    }
    let mut found = Variables {
        options: Vec::new(),
        unknown,
    };
    if known.is_empty() {
        return Ok(found);
    }
    // Keys are the options' names in envy's form: lower case, `_` for `-`.
    let Pairs(pairs) = envy::prefixed("ENVINIT_")
        .from_iter(known)
        .map_err(|e| config(format!("ENVINIT_* variables: {e}")))?;
    for (key, value) in pairs {
        let Some(opt) = TABLE
            .iter()
            .find(|o| o.reach != Reach::CommandLine && o.long.replace('-', "_") == key)
        else {
            continue;
        };
        let values = match opt.repeatable {
            true => value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect(),
            false => vec![value.trim().to_string()],
        };
        found.options.push(Raw {
            opt,
            values,
            source: Source::Variable,
        });
    }
    Ok(found)
}

/// What envy reads the variables into: name and value pairs, in order (a
/// map type of std would bring its own code for a handful of entries).
struct Pairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("variables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
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
    // u64 (585 million years of milliseconds): formatting a u128 would add
    // core's 128-bit formatting and division to the binary.
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Whole milliseconds, rounded up (a poll timeout that never wakes before
/// its deadline), in u64: 128-bit division would add to the binary.
pub fn ceil_millis(duration: Duration) -> u64 {
    let sub = u64::from(duration.subsec_nanos().div_ceil(1_000_000));
    duration.as_secs().saturating_mul(1000).saturating_add(sub)
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

/// Splits `A:B` at the first colon; both sides must be non-empty. `shape`
/// names the form in the error (`SRC:DEST`).
pub fn split_pair<'a>(text: &'a str, shape: &str) -> Result<(&'a str, &'a str), String> {
    match text.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => Err(format!("{text:?} is not {shape}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_millis_rounds_up_and_saturates() {
        assert_eq!(ceil_millis(Duration::ZERO), 0);
        assert_eq!(ceil_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ceil_millis(Duration::from_nanos(1_500_000_001)), 1501);
        assert_eq!(ceil_millis(Duration::MAX), u64::MAX);
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
    }

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn run(args: &[&str]) -> (Vec<Raw>, Vec<OsString>) {
        match lex(words(args)).unwrap() {
            Lexed::Run { options, command } => (options, command),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn options_stop_at_the_first_non_option() {
        let (options, command) = run(&["echo", "-v", "-g", "hi"]);
        assert!(options.is_empty());
        assert_eq!(command, words(&["echo", "-v", "-g", "hi"]));
        let (options, command) = run(&["--signal-group", "--", "--grace", "x"]);
        assert_eq!(options[0].opt.long, "signal-group");
        assert_eq!(options[0].values, ["true"]);
        assert_eq!(command, words(&["--grace", "x"]));
        let (_, command) = run(&["-", "x"]);
        assert_eq!(command, words(&["-", "x"]));
    }

    #[test]
    fn every_spelling_of_a_value() {
        let (options, command) = run(&[
            "-t",
            "a:b",
            "-tc:d",
            "--template=e:f",
            "--grace",
            "1s",
            "--grace=2s",
            "app",
        ]);
        assert_eq!(command, words(&["app"]));
        assert_eq!(options[0].values, ["a:b", "c:d", "e:f"]);
        assert_eq!(options[1].last(), Some("2s"));
        assert_eq!(options[1].source, Source::CommandLine);
    }

    #[test]
    fn help_and_version_end_the_reading() {
        assert_eq!(lex(words(&["-h"])), Ok(Lexed::Help));
        assert_eq!(lex(words(&["--help", "x"])), Ok(Lexed::Help));
        assert_eq!(lex(words(&["-V"])), Ok(Lexed::Version));
        assert_eq!(
            lex(words(&["--grace", "1s", "--version"])),
            Ok(Lexed::Version)
        );
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for args in [
            &["--grace"][..],
            &["--nope", "app"],
            &["-x", "app"],
            &["--log", "x"],
        ] {
            let e = lex(words(args)).unwrap_err();
            assert_eq!(e.code, exit::USAGE, "{args:?}");
            assert!(e.message().ends_with("(see envinit --help)"), "{e:?}");
        }
    }

    #[test]
    fn variables_are_matched_to_options_in_place() {
        for opt in TABLE.iter().filter(|o| o.reach != Reach::CommandLine) {
            assert!(opt.is_variable(&opt.variable()), "{}", opt.long);
        }
        for key in [
            "ENVINIT_GRAC",
            "ENVINIT_grace",
            "ENVINIT_PRE-STOP-DELAY",
            "GRACE",
            "ENVINIT_",
            "ENVINIT_HELP",
        ] {
            assert!(!TABLE.iter().any(|o| o.is_variable(key)), "{key}");
        }
    }

    #[test]
    fn variables_give_lists_single_values_and_unknown_names() {
        let found = from_variables(vars(&[
            ("ENVINIT_REWRITE", "TERM:QUIT, INT:none,"),
            ("ENVINIT_GRACE", " 30s "),
            ("ENVINIT_GRAC", "5s"),
            ("ENVINIT_CHECK", ""),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(found.unknown, ["ENVINIT_GRAC"]);
        let grace = found
            .options
            .iter()
            .find(|r| r.opt.long == "grace")
            .unwrap();
        assert_eq!(grace.values, ["30s"]);
        assert_eq!(grace.source, Source::Variable);
        let rewrite = found
            .options
            .iter()
            .find(|r| r.opt.long == "rewrite")
            .unwrap();
        assert_eq!(rewrite.values, ["TERM:QUIT", "INT:none"]);
        assert_eq!(
            found.options.len(),
            2,
            "the empty ENVINIT_CHECK counts as unset"
        );
        assert_eq!(rewrite.error("bad").code, exit::CONFIG);
        assert!(
            rewrite
                .error("bad")
                .message()
                .starts_with("ENVINIT_REWRITE: bad")
        );
    }

    #[test]
    fn non_unicode_variables_outside_the_prefix_are_skipped() {
        use std::os::unix::ffi::OsStringExt;
        let found = from_variables(vec![
            (OsString::from("JUNK"), OsString::from_vec(vec![0xff, 0xfe])),
            (OsString::from("ENVINIT_GRACE"), OsString::from("1s")),
        ])
        .unwrap();
        assert_eq!(found.options.len(), 1);
        let bad = vec![(
            OsString::from("ENVINIT_GRACE"),
            OsString::from_vec(vec![0xff]),
        )];
        assert_eq!(from_variables(bad).unwrap_err().code, exit::CONFIG);
    }

    #[test]
    fn the_command_line_hides_the_variable() {
        let (cli, _) = run(&["--rewrite", "INT:TERM", "app"]);
        let env = from_variables(vars(&[
            ("ENVINIT_REWRITE", "TERM:QUIT"),
            ("ENVINIT_GRACE", "3s"),
        ]))
        .unwrap();
        let mut given = Given::new(cli, env.options);
        assert!(given.on_command_line("rewrite"));
        let rewrite = given.take("rewrite").unwrap();
        assert_eq!(rewrite.values, ["INT:TERM"]);
        assert_eq!(given.take("grace").unwrap().source, Source::Variable);
        assert!(given.take("grace").is_none());
        assert!(!given.any(&["grace", "rewrite"]));
    }

    #[test]
    fn leading_options_are_counted_and_read() {
        let args = words(&[
            "--vm", "on", "--check", "-t", "a:b", "--", "sh", "--vm", "off",
        ]);
        assert_eq!(option_words(&args), 6);
        assert_eq!(leading_value(&args, "vm").as_deref(), Some("on"));
        assert_eq!(leading_value(&args, "template").as_deref(), Some("a:b"));
        assert_eq!(option_words(&words(&["sh", "-c"])), 0);
        assert_eq!(option_words(&words(&["--bogus", "x"])), 0);
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
        for text in ["0s", "10s", "1500ms", "120s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn booleans() {
        for off in ["0", "false", "FALSE", "no", "off"] {
            assert_eq!(parse_bool(off), Ok(false), "{off}");
        }
        for on in ["1", "true", "Yes", "ON"] {
            assert_eq!(parse_bool(on), Ok(true), "{on}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn pairs() {
        assert_eq!(split_pair("a:b:c", "A:B"), Ok(("a", "b:c")));
        for bad in ["ab", ":b", "a:"] {
            assert!(split_pair(bad, "A:B").is_err(), "{bad}");
        }
    }

    /// The option rows of docs/options.md's tables: `| \`-t, --template
    /// SRC:DEST\` (repeatable) | \`ENVINIT_TEMPLATE\` (list) | ...` and the
    /// variable-only rows `| | \`ENVINIT_HOSTNAME\` | ...` or `| \`ENVINIT_LOG\` |`.
    fn documented_rows() -> Vec<(Option<String>, Option<String>, String)> {
        let docs = include_str!("../docs/options.md");
        let mut rows = Vec::new();
        for line in docs.lines().filter(|l| l.starts_with("| ")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let first = cells[0].trim_start_matches("| ").trim();
            let usage = first
                .strip_prefix('`')
                .and_then(|rest| rest.split_once('`'))
                .map(|(usage, _)| usage.to_string())
                .filter(|u| u.contains("--"));
            let variable = cells
                .iter()
                .take(2)
                .flat_map(|c| c.split('`'))
                .find(|w| w.starts_with("ENVINIT_"))
                .map(String::from);
            if usage.is_some() || variable.is_some() {
                rows.push((usage, variable, line.to_string()));
            }
        }
        rows
    }

    /// Every option of the table is documented in docs/options.md the way
    /// `--help` shows it, with its variable, and every documented option is
    /// in the table.
    #[test]
    fn docs_and_help_match_the_table() {
        let rows = documented_rows();
        let help = help();
        for opt in TABLE {
            let name = format!("--{}", opt.long);
            match opt.reach {
                Reach::Variable => {
                    let var = opt.variable();
                    assert!(
                        rows.iter()
                            .any(|(_, v, _)| v.as_deref() == Some(var.as_str())),
                        "{var} is not in a table of docs/options.md"
                    );
                    assert!(help.contains(&var), "{var} is not in --help");
                }
                Reach::CommandLine | Reach::Both => {
                    let (usage, variable, line) = rows
                        .iter()
                        .find(|(u, _, _)| {
                            u.as_deref().is_some_and(|u| {
                                u.split([' ', '[', '='])
                                    .any(|w| w == name || w == format!("{name},"))
                            })
                        })
                        .unwrap_or_else(|| panic!("{name} is not in a table of docs/options.md"));
                    let usage = usage.as_deref().unwrap_or_default();
                    if let Some(letter) = opt.short {
                        assert!(
                            usage.starts_with(&format!("-{}, ", char::from(letter))),
                            "{line}"
                        );
                    }
                    match opt.value {
                        Some(value) => assert!(
                            usage.ends_with(&format!("{name} {}", value.replace('|', "\\|"))),
                            "docs/options.md shows {name}'s value differently: {line}"
                        ),
                        None if opt.reach == Reach::Both => {
                            assert!(usage.ends_with(&format!("{name}[=BOOL]")), "{line}")
                        }
                        None => {}
                    }
                    assert_eq!(
                        line.contains("(repeatable)"),
                        opt.repeatable,
                        "docs/options.md and the table disagree on whether {name} repeats: {line}"
                    );
                    if opt.reach == Reach::Both {
                        assert_eq!(variable.as_deref(), Some(opt.variable().as_str()), "{line}");
                        assert_eq!(line.contains("(list)"), opt.repeatable, "{line}");
                    }
                    assert!(help.contains(&name), "{name} is not in --help");
                }
            }
        }
        for (usage, variable, line) in &rows {
            let known = match (usage, variable) {
                (Some(usage), _) => TABLE.iter().any(|o| {
                    o.reach != Reach::Variable
                        && usage
                            .split([' ', '[', '=', ','])
                            .any(|w| w == format!("--{}", o.long))
                }),
                (None, Some(var)) => TABLE.iter().any(|o| o.is_variable(var)),
                (None, None) => true,
            };
            assert!(
                known,
                "docs/options.md documents an option the table lacks: {line}"
            );
        }
    }
}
