//! Files: finding the templates (a file, or every file under a directory),
//! reading them within limits, and writing the rendered files atomically.
//!
//! Every path here is resolved by [`chase`] (src/appfs/), envinit being
//! root while the app's user may own some of the directories: a template,
//! a template directory's entries and each DEST's directory are reached
//! component by component, and a step from a directory or symlink of a
//! non-root user to something of another owner is refused (one line naming
//! DEST or the template and the component), so nothing the `--user` could
//! have planted makes envinit read or write outside where the path says.
//!
//! Promises:
//! - Only regular files are read, never opened in a way that blocks (a
//!   FIFO would block the start); a template is at most [`MAX_TEMPLATE`]
//!   bytes; a directory walk stops at [`MAX_DIR_DEPTH`] levels and
//!   [`MAX_FILES`] files.
//! - Writes are two-phase: every output is first written to a temporary
//!   file beside its DEST (created exclusively, written, given its owner and
//!   mode, fsynced), relative to the descriptor of DEST's directory reached
//!   safely; only when all of them are staged is each renamed over its
//!   DEST, through the same descriptors (nothing is resolved by path again),
//!   then the directories are fsynced. If staging fails (a refused DEST
//!   included), every temporary file is removed and no DEST has changed.
//!   A DEST that is a symlink is replaced by the rename, never followed.
//! - With an owner (`--user`), every file written and every directory
//!   created for it belong to that uid and gid; directories that already
//!   existed keep their owner.
//! - One descriptor per distinct DEST directory stays open from its staging
//!   to the renames.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::appfs::chase::{self, Dirs, Found, Kind};

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

/// The end of a message for a template path that could not be resolved:
/// why, and for a refused path, the fix.
fn template_problem(e: &chase::Error) -> String {
    match e {
        chase::Error::Io { errno, .. } => format!("cannot read the template ({})", errno.desc()),
        chase::Error::Unsafe(refused) => format!(
            "refused: {}: give the template and the directories on its path to root, or all to one user",
            refused.describe()
        ),
    }
}

/// The templates for one `--template SRC:DEST`: SRC itself, or every file
/// under the directory SRC, sorted by path, with DEST paths mirroring the
/// relative paths minus a trailing `.tmpl`. `count` is the number of
/// template files found so far in this run. The directories read are added
/// to `dirs` (a file's own directory; a directory and every one under it),
/// for `--watch`.
///
/// Entries whose name starts with `..` are skipped: a Kubernetes volume
/// (a ConfigMap mounted as a template directory) keeps its files in
/// `..TIMESTAMP/` behind a `..data` symlink, and shows each as `NAME ->
/// ..data/NAME`.
pub(crate) fn expand(
    src: &Path,
    dest: &Path,
    count: &mut usize,
    dirs: &mut Vec<PathBuf>,
) -> Result<Vec<Job>, Vec<String>> {
    let found = chase::find(src).map_err(|e| {
        let hint = match e {
            chase::Error::Io { .. } => ": check the path given to --template",
            chase::Error::Unsafe(_) => "",
        };
        vec![format!("{}: {}{hint}", src.display(), template_problem(&e))]
    })?;
    match found.kind() {
        Kind::File => {
            *count += 1;
            dirs.push(match src.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            });
            return Ok(vec![Job {
                src: src.to_path_buf(),
                dest: dest.to_path_buf(),
                mode: found.stat().st_mode & 0o777,
            }]);
        }
        Kind::Directory => {}
        _ => {
            return Err(vec![format!(
                "{}: not a regular file or directory: give a template file or directory",
                src.display()
            )]);
        }
    }
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    let mut walk = Walk {
        count,
        jobs: &mut jobs,
        problems: &mut problems,
        dirs,
    };
    walk.dir(&found, src, dest, 0);
    if problems.is_empty() {
        Ok(jobs)
    } else {
        Err(problems)
    }
}

/// A template directory walk's results so far.
struct Walk<'a> {
    count: &'a mut usize,
    jobs: &'a mut Vec<Job>,
    problems: &'a mut Vec<String>,
    dirs: &'a mut Vec<PathBuf>,
}

impl Walk<'_> {
    /// Every entry of the directory `found` (at `dir` as the user named
    /// it), each resolved from the directory's descriptor.
    fn dir(&mut self, found: &Found, dir: &Path, dest: &Path, depth: usize) {
        if depth >= MAX_DIR_DEPTH {
            self.problems.push(format!(
                "{}: directories nested deeper than {MAX_DIR_DEPTH} levels (a symlink loop?): flatten the template directory",
                dir.display()
            ));
            return;
        }
        self.dirs.push(dir.to_path_buf());
        let names = match found.list() {
            Ok(names) => names,
            Err(e) => {
                self.problems.push(format!(
                    "{}: cannot list the template directory ({})",
                    dir.display(),
                    e.errno().unwrap_or(Errno::EIO).desc()
                ));
                return;
            }
        };
        for name in names {
            if name.as_bytes().starts_with(b"..") {
                continue;
            }
            let path = dir.join(&name);
            let entry = match found.child(&name) {
                Ok(entry) => entry,
                Err(e) => {
                    self.problems
                        .push(format!("{}: {}", path.display(), template_problem(&e)));
                    continue;
                }
            };
            match entry.kind() {
                Kind::Directory => self.dir(&entry, &path, &dest.join(&name), depth + 1),
                Kind::File => {
                    *self.count += 1;
                    if *self.count > MAX_FILES {
                        if *self.count == MAX_FILES + 1 {
                            self.problems.push(format!(
                                "{}: more than {MAX_FILES} template files: render fewer files",
                                path.display()
                            ));
                        }
                        continue;
                    }
                    self.jobs.push(Job {
                        src: path,
                        dest: dest.join(strip_tmpl(name)),
                        mode: entry.stat().st_mode & 0o777,
                    });
                }
                _ => self.problems.push(format!(
                    "{}: not a regular file or directory: remove it from the template directory",
                    path.display()
                )),
            }
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

/// Reads a template of at most [`MAX_TEMPLATE`] bytes, resolved safely
/// (see the module doc).
pub(crate) fn read_template(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: &chase::Error| format!("{}: {}", path.display(), template_problem(e));
    let too_large = || {
        format!(
            "{}: the template is larger than 4 MiB: split it into several templates",
            path.display()
        )
    };
    let found = chase::find(path).map_err(|e| fail(&e))?;
    if found.kind() != Kind::File {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let len = u64::try_from(found.stat().st_size).unwrap_or(0);
    if len > MAX_TEMPLATE {
        return Err(too_large());
    }
    let file = found.open_read().map_err(|e| fail(&e))?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_TEMPLATE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            format!(
                "{}: cannot read the template ({})",
                path.display(),
                crate::exit::reason(&e)
            )
        })?;
    if bytes.len() as u64 > MAX_TEMPLATE {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The message for a DEST whose directory could not be reached or made.
fn dest_problem(dest: &Path, e: &chase::Error) -> String {
    match e {
        chase::Error::Io {
            errno: Errno::EISDIR,
            ..
        } => is_a_directory(dest),
        chase::Error::Io { errno, at } => format!(
            "{}: cannot create its directory ({}: {})",
            dest.display(),
            errno.desc(),
            at.display()
        ),
        chase::Error::Unsafe(refused) => format!(
            "{}: refused: {}: write to a path whose directories belong to root or to that one user",
            dest.display(),
            refused.describe()
        ),
    }
}

fn is_a_directory(dest: &Path) -> String {
    format!(
        "{}: DEST is a directory: give the path of the file to write",
        dest.display()
    )
}

/// Whether `name` in the directory `dir` is a directory (not following a
/// symlink there).
fn names_a_directory(dir: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR)
}

/// Checks, without changing anything, that `dest` can be replaced by a
/// file: its directory is reached safely (as far as it exists; with
/// `creator`, a directory still to create is checked as owned by that uid)
/// and DEST is not a directory.
pub(crate) fn check_dest(dest: &Path, creator: Option<u32>) -> Result<(), String> {
    match chase::parent(dest, Dirs::Look(creator)) {
        Ok(Some(parent)) if names_a_directory(&parent.fd, &parent.name) => {
            Err(is_a_directory(dest))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(dest_problem(dest, &e)),
    }
}

/// `--diff`: appends the unified diff of `output` against its DEST now to
/// `out`; true when they differ.
pub(crate) fn diff_one(out: &mut Vec<u8>, output: &Output, masks: &super::diff::Masks) -> bool {
    let limit = super::MAX_OUTPUT as u64;
    let read = match chase::parent(&output.dest, Dirs::Look(None)) {
        Ok(Some(parent)) => parent.read_existing(limit),
        Ok(None) => Ok(None),
        Err(chase::Error::Io { errno, .. }) => Err(errno),
        Err(chase::Error::Unsafe(_)) => Err(Errno::EPERM),
    };
    let unread = match &read {
        Ok(_) => None,
        Err(Errno::ELOOP) => Some("a symlink: not followed"),
        Err(Errno::EPERM) => Some("an unsafe path: not read"),
        Err(Errno::EFBIG) => Some("larger than 16 MiB: not read"),
        Err(errno) => Some(errno.desc()),
    };
    let (old, old_mode) = match &read {
        Ok(Some((bytes, st))) => (Some(bytes.as_slice()), Some(st.st_mode & 0o7777)),
        _ => (None, None),
    };
    let name = output.dest.display().to_string();
    super::diff::file(
        out,
        &super::diff::Sides {
            name: &name,
            old,
            unread,
            old_mode,
            new: &output.bytes,
            new_mode: output.mode,
            masks,
        },
    )
}

/// A DEST's directory, reached safely, open until the renames.
struct DestDir {
    fd: OwnedFd,
    id: (u64, u64),
}

/// A temporary file written and synced, waiting for its rename.
struct Staged {
    /// Index in the [`DestDir`]s.
    dir: usize,
    temp: OsString,
    name: OsString,
    dest: PathBuf,
}

/// Writes every output atomically (see the module doc); with
/// `changed_only` (a reload), only those whose DEST does not hold that
/// content now (read through [`chase::Parent::read_existing`]). Returns how
/// many were written; on error, the problems; when staging failed, no DEST
/// was touched.
pub(crate) fn write_all(
    outputs: &[Output],
    owner: Option<(u32, u32)>,
    changed_only: bool,
) -> Result<usize, Vec<String>> {
    let mut staged: Vec<Staged> = Vec::with_capacity(outputs.len());
    let mut dirs: Vec<DestDir> = Vec::new();
    for (n, output) in outputs.iter().enumerate() {
        match stage(output, n, owner, &mut dirs, changed_only) {
            Ok(Some(s)) => staged.push(s),
            Ok(None) => {}
            Err(message) => {
                for s in &staged {
                    unlink(&dirs[s.dir].fd, &s.temp);
                }
                return Err(vec![message]);
            }
        }
    }
    let mut problems = Vec::new();
    let mut renamed = BTreeSet::new();
    for s in &staged {
        let fd = &dirs[s.dir].fd;
        match nix::fcntl::renameat(fd, s.temp.as_os_str(), fd, s.name.as_os_str()) {
            Ok(()) => {
                renamed.insert(s.dir);
            }
            Err(errno) => {
                unlink(fd, &s.temp);
                problems.push(format!(
                    "{}: cannot replace the file ({}); files listed before it were written",
                    s.dest.display(),
                    errno.desc()
                ));
            }
        }
    }
    for dir in renamed {
        // Makes the renames durable; a directory that cannot be opened or
        // synced (some filesystems refuse) does not undo the write.
        if let Ok(d) = chase::reopen_dir(&dirs[dir].fd) {
            let _ = d.sync_all();
        }
    }
    if problems.is_empty() {
        Ok(staged.len())
    } else {
        Err(problems)
    }
}

fn unlink(dir: &OwnedFd, name: &OsString) {
    let _ = nix::unistd::unlinkat(
        dir,
        name.as_os_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
}

/// Removes the staged files an earlier envinit left in `dir` when it was
/// killed (SIGKILL, the OOM killer) between staging and renaming: files
/// named exactly as [`stage`] names them, `.envinit-PID-N-N.tmp`, and
/// nothing else. A directory that cannot be read is left alone.
fn remove_stale_staged(dir: &OwnedFd) {
    chase::remove_matching(dir, is_staged_name);
}

/// Whether `name` is one of the staged files a write makes beside a DEST:
/// `.envinit-PID-N-N.tmp`, with decimal numbers.
fn is_staged_name(name: &[u8]) -> bool {
    let Some(middle) = name
        .strip_prefix(b".envinit-")
        .and_then(|rest| rest.strip_suffix(b".tmp"))
    else {
        return false;
    };
    let mut parts = 0;
    for part in middle.split(|b| *b == b'-') {
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        parts += 1;
    }
    parts == 3
}

/// Reaches (or makes) DEST's directory, then writes the output to a new
/// temporary file in it; with `changed_only`, nothing (`None`) when DEST
/// holds that content already.
fn stage(
    output: &Output,
    n: usize,
    owner: Option<(u32, u32)>,
    dirs: &mut Vec<DestDir>,
    changed_only: bool,
) -> Result<Option<Staged>, String> {
    let dest = &output.dest;
    let parent = match chase::parent(dest, Dirs::Make(owner)) {
        Ok(Some(parent)) => parent,
        // Make never stops at a missing directory.
        Ok(None) => {
            return Err(dest_problem(
                dest,
                &chase::Error::Io {
                    errno: Errno::ENOENT,
                    at: dest.to_path_buf(),
                },
            ));
        }
        Err(e) => return Err(dest_problem(dest, &e)),
    };
    if names_a_directory(&parent.fd, &parent.name) {
        return Err(is_a_directory(dest));
    }
    if changed_only
        && parent
            .read_existing(output.bytes.len() as u64)
            .is_ok_and(|now| now.is_some_and(|(bytes, _)| bytes == output.bytes))
    {
        return Ok(None);
    }
    let dir = match dirs.iter().position(|d| d.id == parent.id) {
        Some(i) => i,
        None => {
            remove_stale_staged(&parent.fd);
            dirs.push(DestDir {
                fd: parent.fd,
                id: parent.id,
            });
            dirs.len() - 1
        }
    };
    let fd = &dirs[dir].fd;
    let fail = |what: &str, reason: String| format!("{}: cannot {what} ({reason})", dest.display());
    let mut attempt = 0u32;
    let (temp, mut file) = loop {
        let temp = OsString::from(format!(".envinit-{}-{n}-{attempt}.tmp", std::process::id()));
        match nix::fcntl::openat(
            fd,
            temp.as_os_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(file) => break (temp, File::from(file)),
            Err(Errno::EEXIST) if attempt < 1000 => attempt += 1,
            Err(errno) => {
                return Err(fail(
                    "create a temporary file beside it",
                    errno.desc().to_string(),
                ));
            }
        }
    };
    let written = file
        .write_all(&output.bytes)
        .and_then(|()| match owner {
            Some((uid, gid)) => std::os::unix::fs::fchown(&file, Some(uid), Some(gid)),
            None => Ok(()),
        })
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(output.mode)))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        unlink(fd, &temp);
        return Err(fail(
            "write a temporary file beside it",
            crate::exit::reason(&e),
        ));
    }
    Ok(Some(Staged {
        dir,
        temp,
        name: parent.name,
        dest: dest.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, symlink};

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
        let mut dirs = Vec::new();
        let jobs = expand(&src, Path::new("/out"), &mut count, &mut dirs).unwrap();
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
        assert_eq!(
            dirs,
            vec![src.clone(), src.join("conf.d"), src.join("conf.d/deep")]
        );
    }

    #[test]
    fn symlink_loops_and_missing_sources_are_reported() {
        let dir = tempdir("loop");
        let src = dir.join("src");
        fs::create_dir_all(&src).unwrap();
        symlink(&src, src.join("again")).unwrap();
        let mut count = 0;
        let e = expand(&src, Path::new("/out"), &mut count, &mut Vec::new()).unwrap_err();
        assert!(e[0].contains("nested deeper"), "{e:?}");
        let e = expand(
            &dir.join("nope"),
            Path::new("/out"),
            &mut count,
            &mut Vec::new(),
        )
        .unwrap_err();
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
            false,
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
            false,
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
            false,
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
