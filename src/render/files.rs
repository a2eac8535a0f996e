//! Files: finding the templates (a file, or every file under a directory),
//! reading them within limits, and writing the rendered files atomically.
//!
//! Promises:
//! - Only regular files are read (a FIFO would block the start); a template
//!   is at most [`MAX_TEMPLATE`] bytes; a directory walk stops at
//!   [`MAX_DIR_DEPTH`] levels and [`MAX_FILES`] files.
//! - Writes are two-phase: every output is first written to a temporary
//!   file beside its DEST (created exclusively, written, given its mode,
//!   fsynced); only when all of them are staged is each renamed over its
//!   DEST, then the directories are fsynced. If staging fails, every
//!   temporary file is removed and no DEST has changed. A DEST that is a
//!   symlink is replaced by the rename, never followed.
//! - With an owner (`--user`), every file written and every directory
//!   created for it belong to that uid and gid; directories that already
//!   existed keep their owner.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest template file (4 MiB).
pub const MAX_TEMPLATE: u64 = 4 << 20;

/// The most template files one run renders (over all directories).
pub const MAX_FILES: usize = 10_000;

/// The deepest directory level rendered under a template directory.
pub const MAX_DIR_DEPTH: usize = 32;

/// One template file and where its output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub src: PathBuf,
    pub dest: PathBuf,
    /// The template's permission bits, which DEST gets.
    pub mode: u32,
}

/// A rendered file, ready to write.
#[derive(Debug)]
pub(crate) struct Output {
    pub dest: PathBuf,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// The templates for one `--template SRC:DEST`: SRC itself, or every file
/// under the directory SRC, sorted by path, with DEST paths mirroring the
/// relative paths minus a trailing `.tmpl`. `count` is the number of
/// template files found so far in this run.
pub(crate) fn expand(src: &Path, dest: &Path, count: &mut usize) -> Result<Vec<Job>, Vec<String>> {
    let meta = fs::metadata(src).map_err(|e| {
        vec![format!(
            "{}: cannot read the template ({}): check the path given to --template",
            src.display(),
            crate::logging::reason(&e)
        )]
    })?;
    if meta.is_file() {
        *count += 1;
        return Ok(vec![Job {
            src: src.to_path_buf(),
            dest: dest.to_path_buf(),
            mode: meta.mode() & 0o777,
        }]);
    }
    if !meta.is_dir() {
        return Err(vec![format!(
            "{}: not a regular file or directory: give a template file or directory",
            src.display()
        )]);
    }
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    walk(src, dest, 0, count, &mut jobs, &mut problems);
    if problems.is_empty() {
        Ok(jobs)
    } else {
        Err(problems)
    }
}

fn walk(
    dir: &Path,
    dest: &Path,
    depth: usize,
    count: &mut usize,
    jobs: &mut Vec<Job>,
    problems: &mut Vec<String>,
) {
    if depth >= MAX_DIR_DEPTH {
        problems.push(format!(
            "{}: directories nested deeper than {MAX_DIR_DEPTH} levels (a symlink loop?): flatten the template directory",
            dir.display()
        ));
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!(
                "{}: cannot list the template directory ({})",
                dir.display(),
                crate::logging::reason(&e)
            ));
            return;
        }
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                names.insert(entry.file_name());
            }
            Err(e) => problems.push(format!(
                "{}: cannot list the template directory ({})",
                dir.display(),
                crate::logging::reason(&e)
            )),
        }
    }
    for name in names {
        let path = dir.join(&name);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                problems.push(format!(
                    "{}: cannot read the template ({})",
                    path.display(),
                    crate::logging::reason(&e)
                ));
                continue;
            }
        };
        if meta.is_dir() {
            walk(&path, &dest.join(&name), depth + 1, count, jobs, problems);
        } else if meta.is_file() {
            *count += 1;
            if *count > MAX_FILES {
                if *count == MAX_FILES + 1 {
                    problems.push(format!(
                        "{}: more than {MAX_FILES} template files: render fewer files",
                        path.display()
                    ));
                }
                continue;
            }
            jobs.push(Job {
                src: path,
                dest: dest.join(strip_tmpl(name)),
                mode: meta.mode() & 0o777,
            });
        } else {
            problems.push(format!(
                "{}: not a regular file or directory: remove it from the template directory",
                path.display()
            ));
        }
    }
}

/// `php.ini.tmpl` -> `php.ini`; a name that is only `.tmpl` is kept.
fn strip_tmpl(name: OsString) -> OsString {
    let bytes = name.as_bytes();
    match bytes.strip_suffix(b".tmpl") {
        Some(stem) if !stem.is_empty() => OsString::from_vec(stem.to_vec()),
        _ => name,
    }
}

/// Reads a template of at most [`MAX_TEMPLATE`] bytes.
pub(crate) fn read_template(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: io::Error| {
        format!(
            "{}: cannot read the template ({})",
            path.display(),
            crate::logging::reason(&e)
        )
    };
    let too_large = || {
        format!(
            "{}: the template is larger than 4 MiB: split it into several templates",
            path.display()
        )
    };
    let file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > MAX_TEMPLATE {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_TEMPLATE + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_TEMPLATE {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Checks, without changing anything, that `dest` can be replaced by a
/// file: it must not be a directory.
pub(crate) fn check_dest(dest: &Path) -> Result<(), String> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => Err(format!(
            "{}: DEST is a directory: give the path of the file to write",
            dest.display()
        )),
        _ => Ok(()),
    }
}

/// A temporary file written and synced, waiting for its rename.
struct Staged {
    temp: PathBuf,
    dest: PathBuf,
}

/// Writes every output atomically (see the module doc). On error, the
/// problems; when staging failed, no DEST was touched.
pub(crate) fn write_all(outputs: &[Output], owner: Option<(u32, u32)>) -> Result<(), Vec<String>> {
    let mut staged: Vec<Staged> = Vec::with_capacity(outputs.len());
    let mut problems = Vec::new();
    let mut cleaned = BTreeSet::new();
    for output in outputs {
        let dir = parent_of(&output.dest);
        if cleaned.insert(dir) {
            remove_stale_staged(dir);
        }
    }
    for (n, output) in outputs.iter().enumerate() {
        match stage(output, n, owner) {
            Ok(s) => staged.push(s),
            Err(message) => {
                problems.push(message);
                break;
            }
        }
    }
    if !problems.is_empty() {
        for s in &staged {
            let _ = fs::remove_file(&s.temp);
        }
        return Err(problems);
    }
    let mut dirs = BTreeSet::new();
    for s in &staged {
        match fs::rename(&s.temp, &s.dest) {
            Ok(()) => {
                dirs.insert(parent_of(&s.dest).to_path_buf());
            }
            Err(e) => {
                let _ = fs::remove_file(&s.temp);
                problems.push(format!(
                    "{}: cannot replace the file ({}); files listed before it were written",
                    s.dest.display(),
                    crate::logging::reason(&e)
                ));
            }
        }
    }
    for dir in dirs {
        // Makes the renames durable; a directory that cannot be opened or
        // synced (some filesystems refuse) does not undo the write.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Removes the staged files an earlier envinit left in `dir` when it was
/// killed (SIGKILL, the OOM killer) between staging and renaming: files
/// named exactly as [`stage`] names them, `.envinit-PID-N-N.tmp`, and
/// nothing else. A directory that cannot be read is left alone.
fn remove_stale_staged(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if is_staged_name(name.as_encoded_bytes()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// `.envinit-PID-N-N.tmp`, with decimal numbers.
fn is_staged_name(name: &[u8]) -> bool {
    let Some(middle) = name
        .strip_prefix(b".envinit-")
        .and_then(|rest| rest.strip_suffix(b".tmp"))
    else {
        return false;
    };
    let parts: Vec<&[u8]> = middle.split(|b| *b == b'-').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn stage(output: &Output, n: usize, owner: Option<(u32, u32)>) -> Result<Staged, String> {
    let dest = &output.dest;
    let fail = |what: &str, e: io::Error| {
        format!(
            "{}: cannot {what} ({})",
            dest.display(),
            crate::logging::reason(&e)
        )
    };
    check_dest(dest)?;
    let dir = parent_of(dest);
    match owner {
        None => fs::create_dir_all(dir).map_err(|e| fail("create its directory", e))?,
        Some(owner) => {
            create_dirs_owned(dir, owner).map_err(|e| fail("create its directory", e))?
        }
    }
    let mut attempt = 0u32;
    let (temp, mut file) = loop {
        let temp = dir.join(format!(".envinit-{}-{n}-{attempt}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => attempt += 1,
            Err(e) => return Err(fail("create a temporary file beside it", e)),
        }
    };
    let written = file
        .write_all(&output.bytes)
        .and_then(|()| match owner {
            Some((uid, gid)) => std::os::unix::fs::fchown(&file, Some(uid), Some(gid)),
            None => Ok(()),
        })
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(output.mode)))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(&temp);
        return Err(fail("write a temporary file beside it", e));
    }
    Ok(Staged {
        temp,
        dest: dest.clone(),
    })
}

/// `create_dir_all`, with each directory it creates given to `owner`.
fn create_dirs_owned(dir: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty()) {
        if fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing.into_iter().rev() {
        std::os::unix::fs::lchown(d, Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("envinit-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_envinits_own_staged_names_count_as_stale() {
        for name in [".envinit-1-0-0.tmp", ".envinit-4242-17-3.tmp"] {
            assert!(is_staged_name(name.as_bytes()), "{name}");
        }
        for name in [
            ".envinit-1-0.tmp",
            ".envinit-1-0-0.tmp.bak",
            "envinit-1-0-0.tmp",
            ".envinit-a-0-0.tmp",
            ".envinit--0-0.tmp",
            ".envinit-1-0-0-0.tmp",
            "nginx.conf",
        ] {
            assert!(!is_staged_name(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn directories_expand_recursively() {
        let dir = tempdir("expand");
        let src = dir.join("src");
        fs::create_dir_all(src.join("conf.d/deep")).unwrap();
        fs::write(src.join("php.ini.tmpl"), "x").unwrap();
        fs::write(src.join("conf.d/a.conf"), "y").unwrap();
        fs::write(src.join("conf.d/deep/.tmpl"), "z").unwrap();
        fs::set_permissions(src.join("conf.d/a.conf"), fs::Permissions::from_mode(0o640)).unwrap();
        let mut count = 0;
        let jobs = expand(&src, Path::new("/out"), &mut count).unwrap();
        let pairs: Vec<_> = jobs
            .iter()
            .map(|j| {
                (
                    j.src.strip_prefix(&src).unwrap().to_path_buf(),
                    j.dest.clone(),
                    j.mode,
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("conf.d/a.conf".into(), "/out/conf.d/a.conf".into(), 0o640),
                (
                    "conf.d/deep/.tmpl".into(),
                    "/out/conf.d/deep/.tmpl".into(),
                    0o644
                ),
                ("php.ini.tmpl".into(), "/out/php.ini".into(), 0o644),
            ]
        );
        assert_eq!(count, 3);
    }

    #[test]
    fn symlink_loops_and_missing_sources_are_reported() {
        let dir = tempdir("loop");
        let src = dir.join("src");
        fs::create_dir_all(&src).unwrap();
        symlink(&src, src.join("again")).unwrap();
        let mut count = 0;
        let e = expand(&src, Path::new("/out"), &mut count).unwrap_err();
        assert!(e[0].contains("nested deeper"), "{e:?}");
        let e = expand(&dir.join("nope"), Path::new("/out"), &mut count).unwrap_err();
        assert!(e[0].contains("cannot read the template"), "{e:?}");
    }

    #[test]
    fn templates_are_size_limited() {
        let dir = tempdir("size");
        let big = dir.join("big");
        let f = File::create(&big).unwrap();
        f.set_len(MAX_TEMPLATE + 1).unwrap();
        assert!(
            read_template(&big)
                .unwrap_err()
                .contains("larger than 4 MiB")
        );
        f.set_len(MAX_TEMPLATE).unwrap();
        assert_eq!(read_template(&big).unwrap().len() as u64, MAX_TEMPLATE);
    }

    #[test]
    fn writes_replace_symlinks_and_create_directories() {
        let dir = tempdir("write");
        let target = dir.join("target");
        fs::write(&target, "keep").unwrap();
        let link = dir.join("link");
        symlink(&target, &link).unwrap();
        let nested = dir.join("a/b/c.conf");
        write_all(
            &[
                Output {
                    dest: link.clone(),
                    bytes: b"new".to_vec(),
                    mode: 0o640,
                },
                Output {
                    dest: nested.clone(),
                    bytes: b"deep".to_vec(),
                    mode: 0o600,
                },
            ],
            None,
        )
        .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        let meta = fs::symlink_metadata(&link).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_eq!(fs::read(&link).unwrap(), b"new");
        assert_eq!(fs::read(&nested).unwrap(), b"deep");
        assert_eq!(fs::metadata(&nested).unwrap().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".envinit-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn an_owner_gets_the_files_and_the_directories_created() {
        // SAFETY: geteuid takes nothing and cannot fail.
        if unsafe { nix::libc::geteuid() } != 0 {
            return;
        }
        let dir = tempdir("owner");
        let dest = dir.join("new/deeper/app.conf");
        write_all(
            &[Output {
                dest: dest.clone(),
                bytes: b"x".to_vec(),
                mode: 0o600,
            }],
            Some((4321, 8765)),
        )
        .unwrap();
        let owner = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner(&dest), (4321, 8765));
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o777, 0o600);
        assert_eq!(owner(&dir.join("new")), (4321, 8765));
        assert_eq!(owner(&dir.join("new/deeper")), (4321, 8765));
        assert_eq!(owner(&dir), (0, 0), "an existing directory keeps its owner");
    }

    #[test]
    fn a_failed_stage_changes_nothing() {
        let dir = tempdir("fail");
        let first = dir.join("first");
        fs::write(&first, "old").unwrap();
        fs::create_dir_all(dir.join("isdir")).unwrap();
        let e = write_all(
            &[
                Output {
                    dest: first.clone(),
                    bytes: b"new".to_vec(),
                    mode: 0o644,
                },
                Output {
                    dest: dir.join("isdir"),
                    bytes: b"x".to_vec(),
                    mode: 0o644,
                },
            ],
            None,
        )
        .unwrap_err();
        assert!(e[0].contains("DEST is a directory"), "{e:?}");
        assert_eq!(fs::read(&first).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
