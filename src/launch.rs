//! Launch: what the app gets besides its command line: the user it runs as
//! (`--user`, resolved by [`crate::user`]) and its environment (HOME for
//! that user, `--export-file-var NAME`). Everything is computed here, before
//! anything is written or started; the supervisor only applies the prepared
//! values between fork and exec.
//!
//! Promises:
//! - Without `--user` and `--export-file-var` nothing is read or allocated,
//!   and the child inherits envinit's environment through exec, as always.
//! - envinit's own environment is never changed: the child's is a separate
//!   list, built once.
//! - `--export-file-var NAME` applies to the variables named, never to
//!   every `*_FILE` (as the official images' `file_env` lists its own):
//!   `NAME_FILE` is read exactly as `{{ NAME }}` reads it in templates (one
//!   trailing newline stripped, UTF-8; `NAME` and `NAME_FILE` both set is an
//!   error), through the render module's [`Values`]; the child gets `NAME`
//!   and no `NAME_FILE`. A named `NAME_FILE` that cannot become a variable
//!   (missing, unreadable, not a regular file, too large for one
//!   environment entry, not UTF-8, a NUL byte) is an error: the app would
//!   otherwise start without its secret. Every other variable, `*_FILE`
//!   included (`SSL_CERT_FILE`, `LOG_FILE`), reaches the child untouched,
//!   so its environment does not depend on which files exist (the same at
//!   the first start and after a restart).
//! - Every problem is one line (no value, secret or `NAME_FILE` path in
//!   it); the caller exits 78 before anything starts.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::exit::{self, Failure};
use crate::options::Given;
use crate::render::Values;
use crate::user::{self, Identity};

/// The longest `NAME=value` entry exec accepts (Linux's MAX_ARG_STRLEN,
/// 32 pages, with the NUL byte).
pub const MAX_ENTRY: usize = 128 << 10;

/// `--user` and `--export-file-var`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchSettings {
    /// `USER[:GROUP]`, names or numbers.
    pub user: Option<String>,
    /// `--export-file-var NAME`: give the child `NAME` from the file
    /// `NAME_FILE` names (names checked by [`parse_export_name`], no
    /// duplicates).
    pub export_file_vars: Vec<String>,
}

/// Checks one `--export-file-var` value: a variable name (letters, digits,
/// `_`, not starting with a digit), given without its `_FILE` suffix.
/// No globs: a pattern would again take in path variables that happen to
/// match (`MYSQL_SSL_CA_FILE` for `MYSQL_*`), and make the app's
/// environment depend on which files exist.
pub fn parse_export_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("give the name of a variable, e.g. MYSQL_PASSWORD".into());
    }
    if name.contains(['*', '?', '[']) {
        return Err(format!(
            "{name:?}: patterns are not supported: name each variable the app reads (repeat --export-file-var, or list them: ENVINIT_EXPORT_FILE_VAR=A,B)"
        ));
    }
    let valid = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    if let Some(base) = name.strip_suffix("_FILE") {
        return Err(format!(
            "{name:?}: drop _FILE and name the variable the app reads{}: envinit reads it from {name}",
            if base.is_empty() {
                String::new()
            } else {
                format!(" ({base})")
            }
        ));
    }
    Ok(name.to_string())
}

impl LaunchSettings {
    /// `--user`, `--export-file-var`.
    pub fn from_options(given: &mut Given) -> Result<LaunchSettings, Failure> {
        let mut launch = LaunchSettings::default();
        if let Some(r) = given.take("user") {
            launch.user = r.last().map(String::from);
        }
        if let Some(r) = given.take("export-file-var") {
            for name in r.parse_each(parse_export_name)? {
                if !launch.export_file_vars.contains(&name) {
                    launch.export_file_vars.push(name);
                }
            }
        }
        Ok(launch)
    }
}

/// What the child is started with, prepared before the fork.
#[derive(Debug, Default)]
pub struct Launch {
    /// The `--user` identity, when given.
    pub identity: Option<Identity>,
    /// Whether to switch to `identity` between fork and exec (false when
    /// envinit already runs as that user, not as root).
    pub switch: bool,
    /// The child's environment (`NAME=value`); `None` inherits envinit's.
    pub env: Option<Vec<CString>>,
}

impl Launch {
    /// Who should own the files envinit writes for the app (`--user`).
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.identity.as_ref().map(|i| (i.uid, i.gid))
    }
}

/// Resolves `--user` and builds the child's environment; every problem is
/// returned as one line. Out of line: inlined into `main`'s start it made a
/// start without these options run more instructions (callgrind).
#[inline(never)]
pub fn prepare(settings: Option<&LaunchSettings>) -> Result<Launch, Failure> {
    match settings {
        Some(settings) if settings.user.is_some() || !settings.export_file_vars.is_empty() => {
            prepare_for(settings).map_err(|problems| Failure::all(exit::CONFIG, problems))
        }
        _ => Ok(Launch::default()),
    }
}

fn prepare_for(settings: &LaunchSettings) -> Result<Launch, Vec<String>> {
    let mut launch = Launch::default();
    if let Some(spec) = &settings.user {
        let (identity, switch) = identity(spec, "--user").map_err(|e| vec![e])?;
        launch.switch = switch;
        launch.identity = Some(identity);
    }
    let home = launch.identity.as_ref().map(|i| i.home.as_str());
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    // The same reader of `NAME_FILE` as templates (over its own copy of
    // the environment: only built when a name is given).
    let values = (!settings.export_file_vars.is_empty())
        .then(|| Values::new(vars.iter().cloned(), PathBuf::new()));
    let exports = values
        .as_ref()
        .map(|values| (settings.export_file_vars.as_slice(), values));
    launch.env = Some(child_env(vars, home, exports)?);
    Ok(launch)
}

/// Resolves the user `spec` (given as `option`, for the message), and
/// whether to switch to it between fork and exec: yes as root; not when
/// envinit already runs as that user; an error when it runs as another.
pub fn identity(spec: &str, option: &str) -> Result<(Identity, bool), String> {
    let identity = user::lookup(spec)?;
    // SAFETY: geteuid and getegid take nothing and cannot fail.
    let (euid, egid) = unsafe { (nix::libc::geteuid(), nix::libc::getegid()) };
    if euid != 0 && (identity.uid != euid || identity.gid != egid) {
        return Err(format!(
            "{option} {spec}: envinit runs as uid {euid} gid {egid}, not as root, so it cannot switch users: drop {option} (the container already runs as a user) or start envinit as root"
        ));
    }
    Ok((identity, euid == 0))
}

/// The child's environment from `vars` (envinit's, in order): HOME set to
/// `home` when given; with `exports` (the `--export-file-var` names and the
/// values over the same variables), `NAME=content` in place of each named
/// `NAME_FILE` that is set, and no `NAME_FILE`. Everything else is passed
/// on as it is.
pub fn child_env(
    vars: Vec<(OsString, OsString)>,
    home: Option<&str>,
    exports: Option<(&[String], &Values)>,
) -> Result<Vec<CString>, Vec<String>> {
    let names: &[String] = exports.map_or(&[], |(names, _)| names);
    let mut exported = Vec::new();
    let mut problems = Vec::new();
    if let Some((names, values)) = exports {
        for name in names {
            // The room an entry `NAME=value` leaves for the value.
            let room = MAX_ENTRY.saturating_sub(name.len() + 2);
            match values.file_var(name, room) {
                Ok(Some(content)) => exported.push((name.as_str(), content)),
                Ok(None) => {}
                Err(e) => problems.push(format!("--export-file-var {name}: {e}")),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let is_named_file_var = |key: &[u8]| {
        key.strip_suffix(b"_FILE")
            .is_some_and(|base| names.iter().any(|n| n.as_bytes() == base))
    };
    let is_exported = |key: &[u8]| exported.iter().any(|(n, _)| n.as_bytes() == key);
    let mut env = Vec::with_capacity(vars.len() + 1);
    let mut push = |key: &[u8], value: &[u8]| {
        let mut entry = Vec::with_capacity(key.len() + value.len() + 1);
        entry.extend_from_slice(key);
        entry.push(b'=');
        entry.extend_from_slice(value);
        // An environment entry cannot hold a NUL byte (exported values
        // were checked; the inherited ones come from a C string).
        if let Ok(entry) = CString::new(entry) {
            env.push(entry);
        }
    };
    for (key, value) in &vars {
        let key = key.as_bytes();
        // An empty NAME that NAME_FILE fills is replaced where NAME_FILE was.
        if (home.is_some() && key == b"HOME") || is_exported(key) {
            continue;
        }
        if !is_named_file_var(key) {
            push(key, value.as_bytes());
            continue;
        }
        // A named NAME_FILE never reaches the child (file_env unsets it);
        // NAME takes its place when it was set.
        let name = &key[..key.len() - b"_FILE".len()];
        if let Some((name, content)) = exported.iter().find(|(n, _)| n.as_bytes() == name) {
            push(name.as_bytes(), content.as_bytes());
        }
    }
    if let Some(home) = home {
        push(b"HOME", home.as_bytes());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    fn export(vars: &[(OsString, OsString)], list: &[&str]) -> Result<Vec<String>, Vec<String>> {
        let values = Values::new(vars.iter().cloned(), PathBuf::new());
        let names = names(list);
        child_env(vars.to_vec(), None, Some((&names, &values))).map(strings)
    }

    fn strings(env: Vec<CString>) -> Vec<String> {
        env.into_iter().map(|c| c.into_string().unwrap()).collect()
    }

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("envinit-launch-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self, name: &str, content: &[u8]) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            path.to_str().unwrap().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn home_is_replaced_or_added() {
        let env = child_env(
            vars(&[("HOME", "/root"), ("A", "1")]),
            Some("/home/app"),
            None,
        );
        assert_eq!(strings(env.unwrap()), ["A=1", "HOME=/home/app"]);
        let env = child_env(vars(&[("A", "1")]), Some("/"), None);
        assert_eq!(strings(env.unwrap()), ["A=1", "HOME=/"]);
        let env = child_env(vars(&[("HOME", "/root")]), None, None);
        assert_eq!(strings(env.unwrap()), ["HOME=/root"]);
    }

    #[test]
    fn only_named_file_vars_become_variables() {
        let dir = Dir::new("named");
        let pw = dir.file("pw", b"s3cret\n\n");
        let token = dir.file("token", b"t0ken");
        let ca = dir.file("ca.pem", b"-----BEGIN CERTIFICATE-----\n");
        let all = vars(&[
            ("DB_PASSWORD_FILE", &pw),
            ("SSL_CERT_FILE", &ca),
            ("API_TOKEN", ""),
            ("API_TOKEN_FILE", &token),
            ("LOG_FILE", "/nonexistent/app.log"),
            ("CONFIG_FILE", &pw),
            ("PLAIN", "x"),
        ]);
        let env = export(&all, &["DB_PASSWORD", "API_TOKEN", "PLAIN", "UNSET"]).unwrap();
        assert_eq!(
            env,
            [
                "DB_PASSWORD=s3cret\n",
                &format!("SSL_CERT_FILE={ca}"),
                "API_TOKEN=t0ken",
                "LOG_FILE=/nonexistent/app.log",
                &format!("CONFIG_FILE={pw}"),
                "PLAIN=x",
            ]
        );
        // No name: every variable as it was, whatever the files.
        assert_eq!(
            export(&all, &[]).unwrap(),
            all.iter()
                .map(|(k, v)| format!("{}={}", k.to_str().unwrap(), v.to_str().unwrap()))
                .collect::<Vec<_>>()
        );
        // A named empty NAME_FILE counts as unset, and is not passed on.
        let env = export(&vars(&[("PW_FILE", ""), ("PW", "direct")]), &["PW"]).unwrap();
        assert_eq!(env, ["PW=direct"]);
    }

    #[test]
    fn a_named_file_var_that_cannot_be_exported_is_an_error() {
        let dir = Dir::new("errors");
        let pw = dir.file("pw", b"s3cret\n");
        let nul = dir.file("nul", b"s3c\0ret\n");
        let binary = dir.file("bin", &[0xff, 0xfe, b's']);
        let name = "BIG";
        let room = MAX_ENTRY - name.len() - 2;
        let fits = dir.file("fits", format!("{}\n", "x".repeat(room)).as_bytes());
        let over = dir.file("over", "x".repeat(room + 1).as_bytes());
        let huge = dir.file("huge", "x".repeat(1_100_000).as_bytes());
        let env = export(&vars(&[("BIG_FILE", &fits)]), &["BIG"]).unwrap();
        assert_eq!(env[0].len() + 1, MAX_ENTRY, "exactly the kernel's limit");
        for (file, list, why) in [
            (
                over.as_str(),
                vars(&[("BIG_FILE", &over)]),
                "larger than one environment variable can hold (128 KiB",
            ),
            (
                huge.as_str(),
                vars(&[("BIG_FILE", &huge)]),
                "larger than one environment variable can hold (128 KiB",
            ),
            (
                nul.as_str(),
                vars(&[("BIG_FILE", &nul)]),
                "holds a NUL byte",
            ),
            (
                binary.as_str(),
                vars(&[("BIG_FILE", &binary)]),
                "not valid UTF-8",
            ),
            (
                "/nonexistent/pw",
                vars(&[("BIG_FILE", "/nonexistent/pw")]),
                "does not exist",
            ),
            ("/", vars(&[("BIG_FILE", "/")]), "not a regular file"),
            (
                pw.as_str(),
                vars(&[("BIG", "direct"), ("BIG_FILE", &pw)]),
                "both BIG and BIG_FILE are set",
            ),
        ] {
            let e = export(&list, &["BIG"]).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].starts_with("--export-file-var BIG: "), "{e:?}");
            assert!(e[0].contains(why), "{why}: {e:?}");
            assert!(!e[0].contains(file), "the path is a value: {e:?}");
            assert!(!e[0].contains("s3c") && !e[0].contains("xxx"), "{e:?}");
        }
        // Every problem is reported, one line each.
        let e = export(
            &vars(&[("A_FILE", "/nonexistent/a"), ("B_FILE", &nul)]),
            &["A", "B"],
        )
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn export_names_are_variable_names_without_file() {
        assert_eq!(
            parse_export_name(" MYSQL_PASSWORD "),
            Ok("MYSQL_PASSWORD".into())
        );
        assert_eq!(parse_export_name("_x9"), Ok("_x9".into()));
        for (bad, why) in [
            ("", "give the name"),
            (
                "DB_PASSWORD_FILE",
                "drop _FILE and name the variable the app reads (DB_PASSWORD)",
            ),
            ("_FILE", "drop _FILE"),
            ("9LIVES", "not a variable name"),
            ("DB-PASSWORD", "not a variable name"),
            ("A=B", "not a variable name"),
            ("A,B", "not a variable name"),
            ("MYSQL_*", "patterns are not supported"),
        ] {
            let e = parse_export_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn nothing_is_prepared_without_the_options() {
        let launch = prepare(Some(&LaunchSettings::default())).unwrap();
        assert!(launch.identity.is_none() && launch.env.is_none() && !launch.switch);
    }
}
