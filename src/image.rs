//! Image config: what a container image says about how to run it, read
//! from the JSON that `docker image inspect --format '{{json .Config}}'
//! IMAGE` prints, for VM mode (docs/vm.md), where no container engine
//! applies it.
//!
//! # What it owns
//!
//! Parsing that JSON (`Env`, `Entrypoint`, `Cmd`, `WorkingDir`, `User`,
//! `StopSignal`, `Hostname`; every other field is ignored) and combining it
//! with what the kernel gave envinit into one [`Plan`]: envinit's own
//! argument words, the variables to add to the environment, and the rest.
//! Pure functions over strings; `vm` reads the file and applies the plan.
//!
//! # What it promises
//!
//! - The command is Entrypoint + Cmd, as Docker runs it; arguments from the
//!   kernel command line replace Cmd (as `docker run IMAGE ARGS` does).
//! - When the Entrypoint is envinit itself (an image built `FROM` envinit),
//!   its words are envinit's own options followed by the command: they are
//!   parsed as such, and no second envinit is started. Options from the
//!   kernel command line come after the image's, so they win.
//! - The kernel's `KEY=VALUE` words override the image's `Env`, except the
//!   two the kernel always sets (`HOME=/`, `TERM=linux`), which give way to
//!   the image's own value.
//! - A file that is not the expected JSON is one error naming the line and
//!   column (and the field, inside one envinit applies); the file is read
//!   up to [`MAX_SIZE`] bytes, and nesting in the fields envinit skips is
//!   bounded ([`MAX_DEPTH`]).
//! - A NUL byte (`\u0000`) in a field envinit applies is such an error: no
//!   argument, variable, path or name can hold one.
//!
//! The JSON reader is a small one of its own: serde_json's parser and a
//! derived `Deserialize` cost about 60 KB of binary for seven fields.

use std::ffi::OsString;

use crate::options;
use crate::signals;

/// The largest image config read (1 MiB; real ones are a few KiB).
pub const MAX_SIZE: u64 = 1 << 20;

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 64;

/// The fields of `docker image inspect`'s `.Config` that envinit applies.
/// Docker writes `null` for absent lists and `""` for absent strings.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImageConfig {
    /// `KEY=VALUE` entries.
    pub env: Option<Vec<String>>,
    /// The program and its first arguments.
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments (the whole command without an Entrypoint).
    pub cmd: Option<Vec<String>>,
    /// The directory the command runs in.
    pub working_dir: Option<String>,
    /// `user[:group]`, names or numbers.
    pub user: Option<String>,
    /// The signal `docker stop` sends (`SIGQUIT`, `QUIT`, `3`).
    pub stop_signal: Option<String>,
    /// The hostname.
    pub hostname: Option<String>,
}

/// The fields envinit applies (see [`ImageConfig`]).
const FIELDS: [&str; 7] = [
    "Env",
    "Entrypoint",
    "Cmd",
    "WorkingDir",
    "User",
    "StopSignal",
    "Hostname",
];

/// The problem of a `\u0000` in a field envinit applies.
const NUL: &str = "a string holds \\u0000 (a NUL byte), which no argument, variable, path or name can hold: remove it";

/// Parses the JSON of `docker image inspect --format '{{json .Config}}'`.
/// The error names the line and column, and the field when the problem is
/// inside one envinit applies.
pub fn parse(json: &[u8]) -> Result<ImageConfig, String> {
    let mut reader = Reader {
        text: json,
        at: 0,
        field: None,
    };
    reader.config().map_err(|problem| {
        let before = &json[..reader.at.min(json.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        let field = reader.field.map_or(String::new(), |f| format!("{f}: "));
        let hint = if problem == NUL {
            ""
        } else {
            " (expected the JSON of `docker image inspect --format '{{json .Config}}'`)"
        };
        format!("line {line} column {column}: {field}{problem}{hint}")
    })
}

/// A JSON reader over bytes, for the image config's shape only.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
    /// The field envinit applies whose value is being read, if any.
    field: Option<&'static str>,
}

type Parsed<T> = Result<T, &'static str>;

impl Reader<'_> {
    fn config(&mut self) -> Parsed<ImageConfig> {
        let mut config = ImageConfig::default();
        self.expect(b'{')?;
        if !self.eat(b'}') {
            loop {
                let key = self.string()?;
                self.expect(b':')?;
                self.field = FIELDS.iter().find(|f| **f == key).copied();
                match key.as_str() {
                    "Env" => config.env = self.strings()?,
                    "Entrypoint" => config.entrypoint = self.strings()?,
                    "Cmd" => config.cmd = self.strings()?,
                    "WorkingDir" => config.working_dir = self.optional_string()?,
                    "User" => config.user = self.optional_string()?,
                    "StopSignal" => config.stop_signal = self.optional_string()?,
                    "Hostname" => config.hostname = self.optional_string()?,
                    _ => self.skip(0)?,
                }
                self.field = None;
                if self.eat(b'}') {
                    break;
                }
                self.expect(b',')?;
            }
        }
        self.space();
        if self.at < self.text.len() {
            return Err("trailing characters after the object");
        }
        Ok(config)
    }

    fn space(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips space, then takes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.text.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Parsed<()> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(match byte {
                b'{' => "expected an object",
                b':' => "expected ':'",
                b',' => "expected ',' or the end of the object or array",
                _ => "unexpected character",
            })
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        self.space();
        let found = self.text[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }

    /// `null` or a list of strings.
    fn strings(&mut self) -> Parsed<Option<Vec<String>>> {
        if self.literal(b"null") {
            return Ok(None);
        }
        if !self.eat(b'[') {
            return Err("expected a list of strings or null");
        }
        let mut list = Vec::new();
        if !self.eat(b']') {
            loop {
                list.push(self.string()?);
                if self.eat(b']') {
                    break;
                }
                self.expect(b',')?;
            }
        }
        Ok(Some(list))
    }

    /// `null` or a string.
    fn optional_string(&mut self) -> Parsed<Option<String>> {
        if self.literal(b"null") {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn string(&mut self) -> Parsed<String> {
        if !self.eat(b'"') {
            return Err("expected a string");
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&byte) = self.text.get(self.at) else {
                return Err("unterminated string");
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(&escape) = self.text.get(self.at) else {
                        return Err("unterminated string");
                    };
                    self.at += 1;
                    let simple = match escape {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode_escape()?;
                            if c == '\0' && self.field.is_some() {
                                // Point at the escape's backslash.
                                self.at -= 6;
                                return Err(NUL);
                            }
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => return Err("unknown escape in a string"),
                    };
                    out.push(simple);
                }
                0..=0x1f => return Err("control character in a string"),
                _ => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| "a string is not valid UTF-8")
    }

    fn hex4(&mut self) -> Parsed<u32> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or("expected four hex digits after \\u")?;
        self.at += 4;
        Ok(digits)
    }

    /// After `\u`: one code point, from a surrogate pair if need be.
    fn unicode_escape(&mut self) -> Parsed<char> {
        let high = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&high) {
            if !self.text[self.at..].starts_with(b"\\u") {
                return Err("unpaired surrogate in a string");
            }
            self.at += 2;
            let low = self.hex4()?;
            if !(0xdc00..0xe000).contains(&low) {
                return Err("unpaired surrogate in a string");
            }
            0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
        } else {
            high
        };
        char::from_u32(code).ok_or("unpaired surrogate in a string")
    }

    /// Skips any JSON value (a field envinit does not use).
    fn skip(&mut self, depth: usize) -> Parsed<()> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply");
        }
        self.space();
        match self.text.get(self.at) {
            Some(b'"') => self.string().map(drop),
            Some(&open @ (b'{' | b'[')) => {
                self.at += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                if self.eat(close) {
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip(depth + 1)?;
                    if self.eat(close) {
                        return Ok(());
                    }
                    self.expect(b',')?;
                }
            }
            Some(b't') if self.literal(b"true") => Ok(()),
            Some(b'f') if self.literal(b"false") => Ok(()),
            Some(b'n') if self.literal(b"null") => Ok(()),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                while matches!(
                    self.text.get(self.at),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.at += 1;
                }
                if self.at == start {
                    return Err("expected a value");
                }
                Ok(())
            }
            _ => Err("expected a value"),
        }
    }
}

/// What envinit does with an image config in this boot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// envinit's argument words (without argv\[0\]): options, `--`, command.
    pub args: Vec<OsString>,
    /// Variables to add to the environment (in order; later ones win).
    pub env: Vec<(String, String)>,
    /// The directory to run in, if the image names one.
    pub working_dir: Option<String>,
    /// The user to run as, if the image names one.
    pub user: Option<String>,
    /// The image's stop signal, if it names one.
    pub stop_signal: Option<i32>,
    /// The image's hostname, if it names one.
    pub hostname: Option<String>,
}

/// Combines `config` with the kernel's argument words (`kernel_args`,
/// without argv\[0\]) and the kernel's environment (`kernel_env` answers
/// whether a variable is set, and its value). `is_envinit` tells whether
/// an Entrypoint program is envinit itself.
pub fn plan(
    config: &ImageConfig,
    kernel_args: &[OsString],
    kernel_env: impl Fn(&str) -> Option<String>,
    is_envinit: impl Fn(&str) -> bool,
) -> Result<Plan, String> {
    let (kernel_options, kernel_command) = split(kernel_args);
    let entrypoint: Vec<OsString> = words(&config.entrypoint);
    let cmd: Vec<OsString> = words(&config.cmd);
    let tail = if kernel_command.is_empty() {
        cmd
    } else {
        kernel_command.to_vec()
    };

    let mut args: Vec<OsString> = Vec::new();
    let mut command: Vec<OsString> = Vec::new();
    match config.entrypoint.as_deref() {
        Some([program, rest @ ..]) if is_envinit(program) => {
            let rest: Vec<OsString> = rest.iter().map(OsString::from).collect();
            let (options, own_command) = split(&rest);
            args.extend_from_slice(options);
            command.extend_from_slice(own_command);
        }
        _ => command.extend(entrypoint),
    }
    args.extend_from_slice(kernel_options);
    command.extend(tail);
    args.push("--".into());
    args.extend(command);

    let mut env = Vec::new();
    for entry in config.env.iter().flatten() {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        let kernel_wins = match kernel_env(key).as_deref() {
            None => false,
            // Set by the kernel itself for every init, not by the user.
            Some("/") if key == "HOME" => false,
            Some("linux") if key == "TERM" => false,
            Some(_) => true,
        };
        if !kernel_wins {
            env.push((key.to_string(), value.to_string()));
        }
    }

    let stop_signal = match non_empty(&config.stop_signal) {
        Some(name) => Some(signals::parse(&name).map_err(|e| format!("StopSignal: {e}"))?),
        None => None,
    };
    Ok(Plan {
        args,
        env,
        working_dir: non_empty(&config.working_dir),
        user: non_empty(&config.user),
        stop_signal,
        hostname: non_empty(&config.hostname),
    })
}

/// Splits argument words into envinit's leading options and the command
/// (a `--` between them is dropped).
fn split(words: &[OsString]) -> (&[OsString], &[OsString]) {
    let n = options::option_words(words);
    let options = &words[..n];
    match options.last() {
        Some(last) if last == "--" => (&options[..n - 1], &words[n..]),
        _ => (options, &words[n..]),
    }
}

fn words(list: &Option<Vec<String>>) -> Vec<OsString> {
    list.iter().flatten().map(OsString::from).collect()
}

fn non_empty(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn envinit_named(program: &str) -> bool {
        program.rsplit('/').next() == Some("envinit")
    }

    const NGINX: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,
        "ExposedPorts":{"80/tcp":{}},"Tty":false,
        "Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NGINX_VERSION=1.25.3"],
        "Cmd":["nginx","-g","daemon off;"],"Image":"","Volumes":null,"WorkingDir":"",
        "Entrypoint":["/docker-entrypoint.sh"],"OnBuild":null,"Labels":{"maintainer":"NGINX"},
        "StopSignal":"SIGQUIT"}"#;

    #[test]
    fn parses_what_docker_prints() {
        let config = parse(NGINX.as_bytes()).unwrap();
        assert_eq!(
            config.entrypoint,
            Some(vec!["/docker-entrypoint.sh".to_string()])
        );
        assert_eq!(config.cmd.as_ref().map(Vec::len), Some(3));
        assert_eq!(config.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(config.env.as_ref().map(Vec::len), Some(2));
        let empty = parse(b"{}").unwrap();
        assert_eq!(empty, ImageConfig::default());
        let nulls = parse(br#"{"Env":null,"Entrypoint":null,"Cmd":null,"User":""}"#).unwrap();
        assert_eq!(nulls.entrypoint, None);
    }

    #[test]
    fn bad_json_names_the_position() {
        let err = parse(b"{\n  \"Cmd\": [1]\n}").unwrap_err();
        assert!(
            err.starts_with("line 2 column 11: Cmd: expected a string"),
            "{err}"
        );
        for bad in [
            &b""[..],
            b"42",
            b"[]",
            br#"{"Env":"A=1"}"#,
            br#"{"Cmd":["a"}"#,
            br#"{"Cmd":["a\q"]}"#,
            br#"{"Cmd":["\ud800"]}"#,
            b"{\"Cmd\":[\"a\nb\"]}",
            br#"{"X":[1,2}"#,
            br#"{"X":tru}"#,
            br#"{} {}"#,
            br#"{"Cmd":null,}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"X\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(
            parse(deep.as_bytes())
                .unwrap_err()
                .contains("nested too deeply")
        );
        let fine = format!("{{\"X\":{}{}}}", "[".repeat(10), "]".repeat(10));
        assert!(parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn strings_with_escapes() {
        let config =
            parse(br#"{"Cmd":["a\"b\\c\/d\n\t\u00e9\ud83d\ude00", "caf\u00e9", "\u2603"]}"#)
                .unwrap();
        assert_eq!(
            config.cmd,
            Some(vec![
                "a\"b\\c/d\n\t\u{e9}\u{1f600}".to_string(),
                "caf\u{e9}".to_string(),
                "\u{2603}".to_string()
            ])
        );
        let skipped = parse(
            br#" { "Labels" : {"a": {"b": [1, -2.5e3, true, false, null, "x\"y"]}} , "User" : "app" } "#,
        )
        .unwrap();
        assert_eq!(skipped.user.as_deref(), Some("app"));
    }

    #[test]
    fn entrypoint_and_cmd_as_docker_runs_them() {
        let config = parse(NGINX.as_bytes()).unwrap();
        let p = plan(&config, &[], no_env, envinit_named).unwrap();
        assert_eq!(
            p.args,
            os(&["--", "/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
        assert_eq!(p.stop_signal, Some(3));
        assert_eq!(p.working_dir, None);
        assert_eq!(p.user, None);
        assert_eq!(p.hostname, None);
    }

    #[test]
    fn kernel_arguments_replace_cmd_and_kernel_options_come_first() {
        let config = parse(NGINX.as_bytes()).unwrap();
        let p = plan(
            &config,
            &os(&["--grace", "3s", "nginx", "-T"]),
            no_env,
            envinit_named,
        )
        .unwrap();
        assert_eq!(
            p.args,
            os(&[
                "--grace",
                "3s",
                "--",
                "/docker-entrypoint.sh",
                "nginx",
                "-T"
            ])
        );
        // Options alone keep Cmd.
        let p = plan(&config, &os(&["--grace=3s", "--"]), no_env, envinit_named).unwrap();
        assert_eq!(
            p.args[..3],
            os(&["--grace=3s", "--", "/docker-entrypoint.sh"])
        );
        assert_eq!(p.args.len(), 6);
    }

    #[test]
    fn cmd_alone_is_the_command() {
        let config = ImageConfig {
            cmd: Some(vec!["/app".into(), "serve".into()]),
            ..ImageConfig::default()
        };
        let p = plan(&config, &[], no_env, envinit_named).unwrap();
        assert_eq!(p.args, os(&["--", "/app", "serve"]));
        let p = plan(&config, &os(&["/bin/sh"]), no_env, envinit_named).unwrap();
        assert_eq!(p.args, os(&["--", "/bin/sh"]));
    }

    #[test]
    fn an_envinit_entrypoint_gives_envinit_options() {
        let config = ImageConfig {
            entrypoint: Some(vec![
                "/usr/local/bin/envinit".into(),
                "--template".into(),
                "/t:/etc/app.conf".into(),
                "--grace=5s".into(),
                "--".into(),
            ]),
            cmd: Some(vec!["/app".into(), "-v".into()]),
            ..ImageConfig::default()
        };
        let p = plan(&config, &os(&["--grace", "1s"]), no_env, envinit_named).unwrap();
        assert_eq!(
            p.args,
            os(&[
                "--template",
                "/t:/etc/app.conf",
                "--grace=5s",
                "--grace",
                "1s",
                "--",
                "/app",
                "-v"
            ])
        );
        // An Entrypoint with its own command after the options.
        let config = ImageConfig {
            entrypoint: Some(vec![
                "envinit".into(),
                "-t".into(),
                "a:b".into(),
                "/app".into(),
            ]),
            cmd: Some(vec!["x".into()]),
            ..ImageConfig::default()
        };
        let p = plan(&config, &[], no_env, envinit_named).unwrap();
        assert_eq!(p.args, os(&["-t", "a:b", "--", "/app", "x"]));
        // Some other program is not parsed.
        let config = ImageConfig {
            entrypoint: Some(vec!["/tini".into(), "--grace".into()]),
            ..ImageConfig::default()
        };
        let p = plan(&config, &[], no_env, envinit_named).unwrap();
        assert_eq!(p.args, os(&["--", "/tini", "--grace"]));
    }

    #[test]
    fn a_nul_in_a_field_envinit_applies_names_the_field() {
        for (json, field) in [
            (r#"{"Cmd":["sh","-c","a\u0000b"]}"#, "Cmd"),
            (r#"{"Entrypoint":["\u0000"]}"#, "Entrypoint"),
            (r#"{"Env":["A=\u0000"]}"#, "Env"),
            (r#"{"WorkingDir":"/srv\u0000"}"#, "WorkingDir"),
            (r#"{"User":"\u0000"}"#, "User"),
            (r#"{"StopSignal":"TERM\u0000"}"#, "StopSignal"),
            (r#"{"Hostname":"h\u0000"}"#, "Hostname"),
        ] {
            let err = parse(json.as_bytes()).unwrap_err();
            // The column of the escape's backslash.
            let column = json.find("\\u0000").unwrap() + 1;
            assert_eq!(
                err,
                format!("line 1 column {column}: {field}: {NUL}"),
                "{json}"
            );
        }
        // Elsewhere it is only data envinit skips.
        let config = parse(br#"{"Labels":{"x":"\u0000"},"Cmd":["a"]}"#).unwrap();
        assert_eq!(config.cmd, Some(vec!["a".to_string()]));
        // Other problems inside a field name it too.
        let err = parse(br#"{"Cmd":["a",1]}"#).unwrap_err();
        assert!(
            err.starts_with("line 1 column 13: Cmd: expected a string (expected the JSON"),
            "{err}"
        );
    }

    #[test]
    fn kernel_variables_override_env_but_not_the_kernels_own() {
        let config = ImageConfig {
            env: Some(vec![
                "A=image".into(),
                "B=image".into(),
                "HOME=/root".into(),
                "TERM=xterm".into(),
                "EMPTY=".into(),
                "NOEQUALS".into(),
                "=x".into(),
                "C=a=b".into(),
            ]),
            ..ImageConfig::default()
        };
        let kernel = |key: &str| match key {
            "B" => Some("kernel".to_string()),
            "HOME" => Some("/".to_string()),
            "TERM" => Some("linux".to_string()),
            _ => None,
        };
        let p = plan(&config, &[], kernel, envinit_named).unwrap();
        let pairs: Vec<(&str, &str)> = p
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("A", "image"),
                ("HOME", "/root"),
                ("TERM", "xterm"),
                ("EMPTY", ""),
                ("C", "a=b")
            ]
        );
    }

    #[test]
    fn strings_and_signals() {
        let config = ImageConfig {
            working_dir: Some("/srv".into()),
            user: Some("app:app".into()),
            hostname: Some("web".into()),
            stop_signal: Some("SIGUSR1".into()),
            ..ImageConfig::default()
        };
        let p = plan(&config, &[], no_env, envinit_named).unwrap();
        assert_eq!(p.working_dir.as_deref(), Some("/srv"));
        assert_eq!(p.user.as_deref(), Some("app:app"));
        assert_eq!(p.hostname.as_deref(), Some("web"));
        assert_eq!(p.stop_signal, Some(10));
        let bad = ImageConfig {
            stop_signal: Some("SIGNOPE".into()),
            ..ImageConfig::default()
        };
        let err = plan(&bad, &[], no_env, envinit_named).unwrap_err();
        assert!(err.starts_with("StopSignal: "), "{err}");
    }
}
