//! Launch: what the app gets besides its command line: the user it runs as
//! (`--user`, resolved by [`crate::user`]) and its environment (HOME for
//! that user, `--export-file-vars`). Everything is computed here, before
//! anything is written or started; the supervisor only applies the prepared
//! values between fork and exec.
//!
//! Promises:
//! - Without `--user` and `--export-file-vars` nothing is read or allocated,
//!   and the child inherits envinit's environment through exec, as always.
//! - envinit's own environment is never changed: the child's is a separate
//!   list, built once.
//! - `--export-file-vars` reads `X_FILE` exactly as templates do (one
//!   trailing newline stripped, at most 1 MiB, UTF-8; `X` and `X_FILE` both
//!   set is an error), through the render module's [`Values`].
//! - Every problem is one line (no value or secret in it); the caller exits
//!   78 before anything starts.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::render::Values;
use crate::user::{self, Identity};

/// The longest `NAME=value` entry exec accepts (Linux's MAX_ARG_STRLEN,
/// with the NUL byte).
const MAX_ENTRY: usize = 128 << 10;

/// `--user` and `--export-file-vars`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchSettings {
    /// `USER[:GROUP]`, names or numbers.
    pub user: Option<String>,
    /// Give the child `X` for every readable `X_FILE`.
    pub export_file_vars: bool,
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
/// returned as one line.
pub fn prepare(settings: &LaunchSettings) -> Result<Launch, Vec<String>> {
    if settings.user.is_none() && !settings.export_file_vars {
        return Ok(Launch::default());
    }
    let mut launch = Launch::default();
    if let Some(spec) = &settings.user {
        let identity = user::lookup(spec).map_err(|e| vec![e])?;
        // SAFETY: geteuid and getegid take nothing and cannot fail.
        let (euid, egid) = unsafe { (nix::libc::geteuid(), nix::libc::getegid()) };
        launch.switch = euid == 0;
        if euid != 0 && (identity.uid != euid || identity.gid != egid) {
            return Err(vec![format!(
                "--user {spec}: envinit runs as uid {euid} gid {egid}, not as root, so it cannot switch users: drop --user (the container already runs as a user) or start envinit as root"
            )]);
        }
        launch.identity = Some(identity);
    }
    let home = launch.identity.as_ref().map(|i| i.home.as_str());
    // The same reader of `X_FILE` as templates (its own copy of the
    // environment: only built when asked for).
    let values = settings
        .export_file_vars
        .then(|| Values::from_process(PathBuf::new()));
    launch.env = Some(child_env(
        std::env::vars_os().collect(),
        home,
        values.as_ref(),
    )?);
    Ok(launch)
}

/// The child's environment from `vars` (envinit's, in order): HOME set to
/// `home` when given; with `values` (`--export-file-vars`, over the same
/// variables), `X=content` in place of every `X_FILE` that names a readable
/// file.
pub fn child_env(
    vars: Vec<(OsString, OsString)>,
    home: Option<&str>,
    values: Option<&Values>,
) -> Result<Vec<CString>, Vec<String>> {
    let mut exported = Vec::new();
    let mut problems = Vec::new();
    if let Some(values) = values {
        for (key, value) in &vars {
            let Some(name) = key.to_str().and_then(|k| k.strip_suffix("_FILE")) else {
                continue;
            };
            if name.is_empty() || value.is_empty() {
                continue;
            }
            let why = match values.file_var(name) {
                Ok(Some(content)) if name.len() + content.len() + 2 <= MAX_ENTRY => {
                    exported.push((name.to_string(), content));
                    continue;
                }
                Ok(Some(_)) => "names a file larger than 128 KiB, too large for a variable",
                Ok(None) => "names no readable file",
                Err(e) => {
                    problems.push(format!("--export-file-vars: {e}"));
                    continue;
                }
            };
            tracing::warn!("{name}_FILE {why}: passed on unchanged, {name} not set");
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let replaced = |key: &[u8]| exported.iter().any(|(n, _)| n.as_bytes() == key);
    let mut env = Vec::with_capacity(vars.len() + 1);
    let mut push = |key: &[u8], value: &[u8]| {
        let mut entry = Vec::with_capacity(key.len() + value.len() + 1);
        entry.extend_from_slice(key);
        entry.push(b'=');
        entry.extend_from_slice(value);
        // An environment entry cannot hold a NUL byte; skip one that would.
        if let Ok(entry) = CString::new(entry) {
            env.push(entry);
        }
    };
    for (key, value) in &vars {
        let key = key.as_bytes();
        if (home.is_some() && key == b"HOME") || replaced(key) {
            continue;
        }
        let from_file = key
            .strip_suffix(b"_FILE")
            .and_then(|name| exported.iter().find(|(n, _)| n.as_bytes() == name));
        match from_file {
            Some((name, content)) => push(name.as_bytes(), content.as_bytes()),
            None => push(key, value.as_bytes()),
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

    fn export(vars: &[(OsString, OsString)]) -> Values {
        Values::new(vars.iter().cloned(), PathBuf::new())
    }

    fn strings(env: Vec<CString>) -> Vec<String> {
        env.into_iter().map(|c| c.into_string().unwrap()).collect()
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
    fn file_vars_become_variables() {
        let dir = std::env::temp_dir().join(format!("envinit-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "s3cret\n\n").unwrap();
        let pw = pw.to_str().unwrap();
        let big = dir.join("big");
        std::fs::write(&big, "x".repeat(MAX_ENTRY)).unwrap();
        let all = vars(&[
            ("DB_PASSWORD_FILE", pw),
            ("EMPTY", ""),
            ("EMPTY_FILE", pw),
            ("LOG_FILE", "/nonexistent/app.log"),
            ("DIR_FILE", "/"),
            ("BIG_FILE", big.to_str().unwrap()),
            ("_FILE", pw),
            ("BLANK_FILE", ""),
            ("KEEP", "x"),
        ]);
        let env = child_env(all.clone(), None, Some(&export(&all))).unwrap();
        assert_eq!(
            strings(env),
            [
                "DB_PASSWORD=s3cret\n",
                "EMPTY=s3cret\n",
                "LOG_FILE=/nonexistent/app.log",
                "DIR_FILE=/",
                &format!("BIG_FILE={}", big.display()),
                &format!("_FILE={pw}"),
                "BLANK_FILE=",
                "KEEP=x",
            ]
        );
        let both = vars(&[("PW", "a"), ("PW_FILE", pw)]);
        let e = child_env(both.clone(), None, Some(&export(&both))).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("both PW and PW_FILE are set"), "{e:?}");
        assert!(!e[0].contains("s3cret"));
        // Off: nothing changes.
        let env = child_env(vars(&[("PW_FILE", pw)]), None, None).unwrap();
        assert_eq!(strings(env), [format!("PW_FILE={pw}")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_is_prepared_without_the_options() {
        let launch = prepare(&LaunchSettings::default()).unwrap();
        assert!(launch.identity.is_none() && launch.env.is_none() && !launch.switch);
    }
}
