//! Values: where templates get their inputs. Owns the lookup of environment
//! variables (with the `X_FILE` convention), of files in the secrets
//! directory, and of the container facts, computed only when a template asks.
//!
//! Promises:
//! - The environment is kept as raw bytes ([`OsString`]): a variable that is
//!   not UTF-8 never crashes anything; only a variable a template references
//!   is decoded, and it is an error if it is not UTF-8.
//! - Errors never contain a variable's or a file's content (nor the path in
//!   an `X_FILE`, which is a value too).
//! - Secrets and `X_FILE` files are read by root for the app: each path is
//!   resolved by [`chase`] (src/appfs/), so a symlink the app's user planted
//!   on the way (or a file of root's in the user's directory) is refused
//!   instead of read; only regular files are opened, never blocking.
//! - Every value is at most [`MAX_VALUE`] bytes, and files read during one run
//!   total at most [`MAX_FILES_TOTAL`] bytes, so no input makes envinit
//!   allocate without bound.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::libc;

use crate::appfs::chase;
use crate::container::{Facts, Unreadable};

/// The largest value envinit accepts: a variable, a secret or an `X_FILE`
/// file (1 MiB).
pub const MAX_VALUE: usize = 1 << 20;

/// The most bytes read from secret and `X_FILE` files in one run (64 MiB).
pub const MAX_FILES_TOTAL: u64 = 64 << 20;

/// A value as a template sees it: `None` when unset.
pub(crate) type Got = Option<Rc<str>>;

/// One of the container facts templates can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fact {
    /// `container.memory_bytes`.
    MemoryBytes,
    /// `container.memory_mib`.
    MemoryMib,
    /// `container.cpus`.
    Cpus,
    /// `container.memory_limited`: `true` or `false`.
    MemoryLimited,
}

impl Fact {
    /// The names after `container.`, in the order the docs list them.
    pub(crate) const NAMES: [(&'static str, Fact); 4] = [
        ("memory_bytes", Fact::MemoryBytes),
        ("memory_mib", Fact::MemoryMib),
        ("cpus", Fact::Cpus),
        ("memory_limited", Fact::MemoryLimited),
    ];
}

/// Everything templates and ini targets read: the environment, the secrets
/// directory and the container facts.
pub struct Values {
    env: HashMap<OsString, OsString>,
    secrets_dir: PathBuf,
    detect: Box<dyn Fn() -> Result<Facts, Unreadable>>,
    facts: OnceCell<Result<Facts, Unreadable>>,
    files: RefCell<HashMap<PathBuf, Result<Got, i32>>>,
    read_total: Cell<u64>,
    /// How many values read from a secret were handed out so far.
    secret_reads: Cell<u32>,
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the environment: it holds values.
        f.debug_struct("Values")
            .field("variables", &self.env.len())
            .field("secrets_dir", &self.secrets_dir)
            .finish_non_exhaustive()
    }
}

/// Why reading a file failed, without its content.
enum ReadError {
    /// The errno of the failed call.
    Io(i32),
    TooLarge,
    NotUtf8,
    NotAFile,
    Budget,
    /// The path makes an unsafe step (src/appfs/chase.rs).
    Unsafe(Box<chase::Unsafe>),
}

impl From<chase::Error> for ReadError {
    fn from(e: chase::Error) -> Self {
        match e {
            chase::Error::Io { errno, .. } => ReadError::Io(errno as i32),
            chase::Error::Unsafe(refused) => ReadError::Unsafe(refused),
        }
    }
}

impl Values {
    /// Values over `env` (name, value pairs; later pairs win) and the secrets
    /// directory. Container facts come from [`Facts::detect`], run at most
    /// once and only if a template names `container.*`.
    pub fn new(env: impl IntoIterator<Item = (OsString, OsString)>, secrets_dir: PathBuf) -> Self {
        Values {
            env: env.into_iter().collect(),
            secrets_dir,
            detect: Box::new(Facts::detect),
            facts: OnceCell::new(),
            files: RefCell::new(HashMap::new()),
            read_total: Cell::new(0),
            secret_reads: Cell::new(0),
        }
    }

    /// This process's environment and the given secrets directory.
    pub fn from_process(secrets_dir: PathBuf) -> Self {
        Values::new(std::env::vars_os(), secrets_dir)
    }

    /// Uses `detect` instead of [`Facts::detect`] for `container.*` (tests).
    pub fn with_container(mut self, detect: impl Fn() -> Facts + 'static) -> Self {
        self.detect = Box::new(move || Ok(detect()));
        self
    }

    /// The same with a detection that can fail (tests).
    pub fn with_container_result(
        mut self,
        detect: impl Fn() -> Result<Facts, Unreadable> + 'static,
    ) -> Self {
        self.detect = Box::new(detect);
        self
    }

    /// Whether the container facts were computed (a template named them).
    pub fn container_detected(&self) -> bool {
        self.facts.get().is_some()
    }

    /// The secrets directory.
    pub fn secrets_dir(&self) -> &Path {
        &self.secrets_dir
    }

    /// Every variable whose name starts with `prefix` (as bytes), sorted by
    /// name: for `--ini`.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Vec<(&OsStr, &OsStr)> {
        let mut found: Vec<(&OsStr, &OsStr)> = self
            .env
            .iter()
            .filter(|(k, _)| k.as_encoded_bytes().starts_with(prefix.as_bytes()))
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
            .collect();
        found.sort();
        found
    }

    /// Whether `{{ name }}` reads its value from the file `name_FILE` names.
    pub(crate) fn reads_file(&self, name: &str) -> bool {
        self.raw(&format!("{name}_FILE")).is_some()
    }

    /// How many values read from a secret (`secrets.X` or an `X_FILE`)
    /// were handed out so far (wrapping): a change between two calls says
    /// one was. Files holding such values are written unreadable for
    /// "other", and `--diff` masks them.
    pub(crate) fn secret_reads(&self) -> u32 {
        self.secret_reads.get()
    }

    fn secret_read(&self) {
        self.secret_reads
            .set(self.secret_reads.get().wrapping_add(1));
    }

    /// The container facts, if a template named one and they were read.
    pub fn facts(&self) -> Option<Facts> {
        self.facts.get().and_then(|f| f.as_ref().ok()).copied()
    }

    /// Every value file read (or looked for) so far: secrets and `X_FILE`
    /// files, as named, missing ones included (a reload watches their
    /// directories).
    pub fn files_read(&self) -> Vec<PathBuf> {
        self.files.borrow().keys().cloned().collect()
    }

    fn raw(&self, name: &str) -> Option<&OsStr> {
        self.env
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// The variable `name` as `{{ NAME }}` sees it: from `NAME`, or from the
    /// file `NAME_FILE` names. `Ok(None)` when neither is set; an empty
    /// `NAME` (with no `NAME_FILE`) is `Some("")`. Errors are one message
    /// without a position.
    pub(crate) fn env(&self, name: &str) -> Result<Got, String> {
        let file_var = format!("{name}_FILE");
        let direct = self.raw(name);
        let via_file = self.raw(&file_var);
        match (direct, via_file) {
            (Some(_), Some(_)) => Err(format!(
                "both {name} and {file_var} are set: unset one of them"
            )),
            (None, Some(path)) => match self.read_file(Path::new(path)) {
                Ok(v) => {
                    self.secret_read();
                    Ok(Some(v))
                }
                Err(e) => Err(format!(
                    "{file_var} names a file that {}",
                    e.describe(name, &file_var)
                )),
            },
            (Some(value), None) => {
                if value.len() > MAX_VALUE {
                    return Err(format!(
                        "{name} is larger than 1 MiB: shorten it, or pass large content as a file"
                    ));
                }
                match value.to_str() {
                    Some(text) => Ok(Some(Rc::from(text))),
                    None => Err(format!("{name} is not valid UTF-8: fix its value")),
                }
            }
            (None, None) => Ok(self.env.get(OsStr::new(name)).map(|_| Rc::from(""))),
        }
    }

    /// For `--export-file-var NAME`: the value `NAME_FILE` gives `NAME`,
    /// read exactly as `{{ NAME }}` reads it (one trailing newline
    /// stripped), for an environment entry: `Ok(None)` when `NAME_FILE` is
    /// unset or empty; an error (without the content or the path) when
    /// `NAME` is set too, or the file is missing, unreadable, not a regular
    /// file, not UTF-8, holds a NUL byte, or is larger than `room` bytes.
    pub(crate) fn file_var(&self, name: &str, room: usize) -> Result<Got, String> {
        let file_var = format!("{name}_FILE");
        let Some(path) = self.raw(&file_var) else {
            return Ok(None);
        };
        if self.raw(name).is_some() {
            return self.env(name);
        }
        let too_large = || {
            format!(
                "{file_var} names a file larger than one environment variable can hold ({} KiB with its name, Linux's limit): let the app read the file instead",
                (room + name.len() + 2) >> 10
            )
        };
        match self.read_file(Path::new(path)) {
            Ok(value) if value.len() > room => Err(too_large()),
            Ok(value) if value.contains('\0') => Err(format!(
                "{file_var} names a file that holds a NUL byte, which no environment variable can hold: {name} must be text"
            )),
            Ok(value) => Ok(Some(value)),
            Err(ReadError::TooLarge) => Err(too_large()),
            Err(e) => Err(format!(
                "{file_var} names a file that {}",
                e.describe(name, &file_var)
            )),
        }
    }

    /// The secret `name` (already checked to contain no `/` and no `..`):
    /// `Ok(None)` when the file does not exist.
    pub(crate) fn secret(&self, name: &str) -> Result<Got, String> {
        let path = self.secrets_dir.join(name);
        match self.read_file(&path) {
            Ok(v) => {
                self.secret_read();
                Ok(Some(v))
            }
            Err(ReadError::Io(libc::ENOENT)) => Ok(None),
            Err(e) => Err(format!(
                "secret {name} in {} {}",
                self.secrets_dir.display(),
                e.describe_secret()
            )),
        }
    }

    /// A container fact, as text; the error names the file that could not
    /// be read.
    pub(crate) fn fact(&self, fact: Fact) -> Result<String, String> {
        let facts = self
            .facts
            .get_or_init(|| (self.detect)())
            .as_ref()
            .map_err(|e| {
                let name = Fact::NAMES
                    .iter()
                    .find(|(_, f)| *f == fact)
                    .map_or("?", |(n, _)| n);
                format!("container.{name}: {e}")
            })?;
        Ok(match fact {
            Fact::MemoryBytes => facts.memory_bytes.to_string(),
            Fact::MemoryMib => (facts.memory_bytes / (1 << 20)).to_string(),
            Fact::Cpus => facts.cpus.max(1).to_string(),
            Fact::MemoryLimited => facts.memory_limited.to_string(),
        })
    }

    /// Reads a value file once per run (cached): at most [`MAX_VALUE`]
    /// bytes, UTF-8, one trailing `\n` or `\r\n` stripped. Only regular
    /// files are read (a FIFO would block the start).
    fn read_file(&self, path: &Path) -> Result<Rc<str>, ReadError> {
        if let Some(cached) = self.files.borrow().get(path) {
            return match cached {
                Ok(Some(v)) => Ok(v.clone()),
                Ok(None) => Err(ReadError::NotUtf8),
                Err(errno) => Err(ReadError::Io(*errno)),
            };
        }
        let result = self.read_file_uncached(path);
        let cached = match &result {
            Ok(v) => Ok(Some(v.clone())),
            Err(ReadError::Io(errno)) => Err(*errno),
            // Not cached: cheap to find again, and rare.
            Err(_) => return result,
        };
        self.files.borrow_mut().insert(path.to_path_buf(), cached);
        result
    }

    /// Envinit reads as root for the app: the path is resolved safely
    /// ([`chase`]), so a symlink the app's user planted on the way cannot
    /// point the read at another file.
    fn read_file_uncached(&self, path: &Path) -> Result<Rc<str>, ReadError> {
        let found = chase::find(path)?;
        if found.kind() != chase::Kind::File {
            return Err(ReadError::NotAFile);
        }
        if u64::try_from(found.stat().st_size).unwrap_or(0) > MAX_VALUE as u64 + 2 {
            return Err(ReadError::TooLarge);
        }
        let file = found.open_read()?;
        let mut bytes = Vec::new();
        file.take(MAX_VALUE as u64 + 3)
            .read_to_end(&mut bytes)
            .map_err(|e| ReadError::Io(errno_of(&e)))?;
        let total = self.read_total.get().saturating_add(bytes.len() as u64);
        if total > MAX_FILES_TOTAL {
            return Err(ReadError::Budget);
        }
        self.read_total.set(total);
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
        } else if bytes.ends_with(b"\n") {
            bytes.truncate(bytes.len() - 1);
        }
        if bytes.len() > MAX_VALUE {
            return Err(ReadError::TooLarge);
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Rc::from(text)),
            Err(_) => Err(ReadError::NotUtf8),
        }
    }
}

/// The errno behind an I/O error (EIO if it carries none).
fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl ReadError {
    /// The end of "X_FILE names a file that ...".
    fn describe(&self, name: &str, file_var: &str) -> String {
        match self {
            ReadError::Io(libc::ENOENT) => {
                format!("does not exist: fix {file_var}, or mount the file")
            }
            ReadError::Io(errno) => format!(
                "cannot be read ({}): fix {file_var} or the file",
                Errno::from_raw(*errno).desc()
            ),
            ReadError::NotAFile => format!("is not a regular file: point {file_var} at a file"),
            ReadError::TooLarge => "is larger than 1 MiB: values are limited to 1 MiB".into(),
            ReadError::NotUtf8 => format!("is not valid UTF-8 text: {name} must be text"),
            ReadError::Budget => "would take the files read in this run over 64 MiB".into(),
            ReadError::Unsafe(refused) => format!(
                "is refused: {}: point {file_var} at a file whose directories belong to root or to that one user",
                refused.describe_owners()
            ),
        }
    }

    /// The end of "secret NAME in DIR ...".
    fn describe_secret(&self) -> String {
        match self {
            ReadError::Io(errno) => format!(
                "cannot be read ({}): fix its permissions",
                Errno::from_raw(*errno).desc()
            ),
            ReadError::NotAFile => "is not a regular file".into(),
            ReadError::TooLarge => "is larger than 1 MiB: values are limited to 1 MiB".into(),
            ReadError::NotUtf8 => "is not valid UTF-8 text".into(),
            ReadError::Budget => "would take the files read in this run over 64 MiB".into(),
            ReadError::Unsafe(refused) => format!(
                "is refused: {}: give the secret and the directories on its path to root, or all to one user",
                refused.describe()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn facts() -> Facts {
        Facts {
            memory_bytes: 512 << 20,
            memory_limited: true,
            cpus: 2,
        }
    }

    fn values(env: &[(&str, &str)], dir: &Path) -> Values {
        Values::new(
            env.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            dir.to_path_buf(),
        )
        .with_container(facts)
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("envinit-values-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn plain_empty_and_unset() {
        let v = values(&[("A", "x"), ("E", "")], Path::new("/nonexistent"));
        assert_eq!(v.env("A").unwrap().as_deref(), Some("x"));
        assert_eq!(v.env("E").unwrap().as_deref(), Some(""));
        assert_eq!(v.env("NOPE").unwrap(), None);
    }

    #[test]
    fn file_convention() {
        let dir = tempdir("file");
        std::fs::write(dir.join("pw"), "s3cret\r\n").unwrap();
        std::fs::write(dir.join("two"), "a\n\n").unwrap();
        let pw = dir.join("pw");
        let two = dir.join("two");
        let v = values(
            &[
                ("PW_FILE", pw.to_str().unwrap()),
                ("PW2", ""),
                ("PW2_FILE", pw.to_str().unwrap()),
                ("T_FILE", two.to_str().unwrap()),
                ("BOTH", "x"),
                ("BOTH_FILE", pw.to_str().unwrap()),
                ("GONE_FILE", "/nonexistent/file"),
                ("DIR_FILE", dir.to_str().unwrap()),
            ],
            &dir,
        );
        assert_eq!(v.env("PW").unwrap().as_deref(), Some("s3cret"));
        assert_eq!(v.env("PW2").unwrap().as_deref(), Some("s3cret"));
        assert_eq!(v.env("T").unwrap().as_deref(), Some("a\n"));
        let both = v.env("BOTH").unwrap_err();
        assert!(both.contains("BOTH and BOTH_FILE"), "{both}");
        let gone = v.env("GONE").unwrap_err();
        assert!(
            gone.contains("does not exist") && !gone.contains("/nonexistent"),
            "{gone}"
        );
        assert!(v.env("DIR").unwrap_err().contains("not a regular file"));
        for e in [both, gone] {
            assert!(!e.contains("s3cret"));
        }
    }

    #[test]
    fn secrets() {
        let dir = tempdir("secrets");
        std::fs::write(dir.join("db"), "hunter2\n").unwrap();
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
        let v = values(&[], &dir);
        assert_eq!(v.secret("db").unwrap().as_deref(), Some("hunter2"));
        assert_eq!(v.secret("missing").unwrap(), None);
        let e = v.secret("bin").unwrap_err();
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn non_utf8_variables() {
        let v = Values::new(
            vec![
                (OsString::from("BAD"), OsString::from_vec(vec![0xff])),
                (OsString::from_vec(vec![0xfe]), OsString::from("x")),
                (OsString::from("OK"), OsString::from("fine")),
            ],
            PathBuf::from("/nonexistent"),
        );
        assert_eq!(v.env("OK").unwrap().as_deref(), Some("fine"));
        assert!(v.env("BAD").unwrap_err().contains("not valid UTF-8"));
    }

    #[test]
    fn oversized_values() {
        let big = "x".repeat(MAX_VALUE + 1);
        let v = values(&[("BIG", &big)], Path::new("/nonexistent"));
        assert!(v.env("BIG").unwrap_err().contains("1 MiB"));
        let dir = tempdir("big");
        std::fs::write(dir.join("big"), &big).unwrap();
        let v = values(&[], &dir);
        assert!(v.secret("big").unwrap_err().contains("1 MiB"));
        // Exactly the limit plus a stripped newline is fine.
        std::fs::write(dir.join("edge"), format!("{}\n", &big[1..])).unwrap();
        assert_eq!(v.secret("edge").unwrap().unwrap().len(), MAX_VALUE);
    }

    #[test]
    fn facts_are_lazy() {
        let v = values(&[], Path::new("/nonexistent"));
        assert!(!v.container_detected());
        assert_eq!(v.fact(Fact::MemoryMib).unwrap(), "512");
        assert_eq!(
            v.fact(Fact::MemoryBytes).unwrap(),
            (512u64 << 20).to_string()
        );
        assert_eq!(v.fact(Fact::Cpus).unwrap(), "2");
        assert_eq!(v.fact(Fact::MemoryLimited).unwrap(), "true");
        assert!(v.container_detected());
    }

    #[test]
    fn prefix_listing_is_sorted() {
        let v = values(&[("P_b", "2"), ("P_a", "1"), ("Q_a", "3")], Path::new("/x"));
        let names: Vec<_> = v.with_prefix("P_").into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, vec![OsStr::new("P_a"), OsStr::new("P_b")]);
    }
}
