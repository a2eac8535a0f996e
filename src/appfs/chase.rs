//! Chase: resolving a path safely as root (see [`super`]).
//!
//! A path is walked from `/` one component at a time (a relative path is
//! made absolute against the current directory first): each component is
//! opened `O_PATH | O_NOFOLLOW` relative to the descriptor of the directory
//! before it and checked on its own descriptor (fstat); symlinks are read
//! (readlinkat on that descriptor) and followed by hand, an absolute target
//! restarting at `/`; `..` opens the parent of the directory the walk is in.
//!
//! # The rule
//!
//! Every step goes from a *from*, the directory the walk is in or the
//! symlink it has just read, to a *to*: the entry opened in the directory,
//! the `/` an absolute symlink restarts at, the first component of a
//! relative symlink's target (the directory the walk ends in, for a last
//! symlink whose target is `.` or ends in `..`), the parent reached by
//! `..`, a directory envinit creates. For a DEST ([`parent`]) the last
//! component is never looked at: the writer replaces it. A step from a *from* owned by a non-root uid to a *to* owned by
//! a different uid is refused ([`Unsafe`]); from root-owned ones anything
//! goes. This is systemd's CHASE_SAFE (`src/basic/chase.c`), one point
//! stricter: after a relative symlink systemd checks the next component
//! against the directory holding the symlink, here against the symlink
//! itself, so a user's symlink in a root-owned directory (`/tmp/x ->
//! ../etc`) cannot lead into root's directories by a relative target any
//! more than by an absolute one.
//!
//! Promises:
//! - What is used is what was checked: every step and every later use
//!   (reading a file, listing a directory, writing beside a DEST) goes
//!   through the descriptors the walk opened, never through the path again.
//! - At most [`MAX_LINKS`] symlinks per resolution (ELOOP beyond), every
//!   target at most a page (the kernel's limit), at most 4096 components
//!   waiting (ENAMETOOLONG beyond): the work and memory of one resolution
//!   are bounded.
//! - Nothing is opened in a way that can block or have side effects: a file
//!   is opened for reading only once its `O_PATH` descriptor shows a regular
//!   file, then `O_NONBLOCK | O_NOFOLLOW | O_NOCTTY`, and checked to be that
//!   same file (device and inode).
//! - Nothing is created unless asked ([`Dirs::Make`]); a directory envinit
//!   creates is checked by the rule before (as owned by the uid it will
//!   have) and after it is made, and is chowned only when it is the empty
//!   directory just made (not one swapped in by a race).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::libc;
use nix::sys::stat::{FileStat, Mode, fstat, mkdirat};

/// The most symlinks one resolution follows (the kernel's own limit).
pub const MAX_LINKS: usize = 40;

/// The most components waiting to be walked (symlink targets nested in
/// symlink targets could otherwise pile up 40 pages of `a/a/a/...`).
const MAX_PENDING: usize = 4096;

/// What a component is, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A regular file.
    File,
    /// Anything else (FIFO, socket, device).
    Special,
}

impl Kind {
    /// The kind of what `st` describes.
    pub fn of(st: &FileStat) -> Kind {
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Directory,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFREG => Kind::File,
            _ => Kind::Special,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::Symlink => "symlink",
            Kind::File => "file",
            Kind::Special => "special file",
        }
    }
}

/// One end of a step: where it is, what it is, who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The path as resolved so far (symlinks replaced by their targets).
    pub path: PathBuf,
    /// What it is.
    pub kind: Kind,
    /// Its owner.
    pub uid: u32,
}

/// How the refused step went from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `to` is an entry of the directory `from`.
    Entry,
    /// `from` is a symlink with this target; `to` is where the target
    /// leads first (`/`, its first component, or the parent for `..`).
    Link(PathBuf),
    /// `to` is the parent (`..`) of the directory `from`.
    Parent,
    /// `to` is the directory envinit would create in `from`, for its uid.
    Created,
}

/// A refused step: from a component owned by a non-root uid to one owned
/// by another uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    /// The directory or symlink owned by a non-root uid.
    pub from: Node,
    /// What it led to, owned by another uid.
    pub to: Node,
    /// How.
    pub via: Via,
    /// The last symlink followed before this step (not the step's own
    /// symlink, already in `via`), and its target: where a path went wrong
    /// is often a symlink a few steps back (`u/link -> ../../etc`).
    pub after: Option<(Node, PathBuf)>,
}

impl Unsafe {
    /// The refused step with its paths, then why it is refused, e.g.
    /// "/t/cfg/conf is a symlink owned by uid 4242 pointing to /t/rootdir
    /// (through /, owned by uid 0): an unsafe path (uid 4242 could have
    /// planted it)".
    pub fn describe(&self) -> String {
        self.text(true)
    }

    /// The same without any path, for a path that is itself a value (an
    /// `X_FILE`): only the kinds and the owners, e.g. "a symlink owned by
    /// uid 4242 leads to a directory owned by uid 0: an unsafe path (uid
    /// 4242 could have planted it)".
    pub fn describe_owners(&self) -> String {
        self.text(false)
    }

    fn text(&self, paths: bool) -> String {
        let (from, to) = (&self.from, &self.to);
        let (fp, tp) = (from.path.display(), to.path.display());
        let (fu, tu, kind) = (from.uid, to.uid, to.kind.name());
        let step = match (&self.via, paths) {
            (Via::Entry, true) => {
                format!("{tp} is a {kind} owned by uid {tu} in {fp}, a directory owned by uid {fu}")
            }
            (Via::Entry, false) => {
                format!("a {kind} owned by uid {tu} is in a directory owned by uid {fu}")
            }
            (Via::Link(target), true) => format!(
                "{fp} is a symlink owned by uid {fu} pointing to {} (through {tp}, owned by uid {tu})",
                target.display()
            ),
            (Via::Link(_), false) => {
                format!("a symlink owned by uid {fu} leads to a {kind} owned by uid {tu}")
            }
            (Via::Parent, true) => format!(
                "{fp}/.. leads from a directory owned by uid {fu} to {tp}, owned by uid {tu}"
            ),
            (Via::Parent, false) => {
                format!("a .. leads from a directory owned by uid {fu} to one owned by uid {tu}")
            }
            (Via::Created, true) => format!(
                "{tp} would be a directory of uid {tu} in {fp}, a directory owned by uid {fu}"
            ),
            (Via::Created, false) => {
                format!("a directory of uid {tu} would be created in one owned by uid {fu}")
            }
        };
        let after = match &self.after {
            Some((link, target)) if paths => format!(
                ", after the symlink {} -> {} (owned by uid {})",
                link.path.display(),
                target.display(),
                link.uid
            ),
            Some((link, _)) => format!(", after a symlink owned by uid {}", link.uid),
            None => String::new(),
        };
        let why = match self.via {
            Via::Created => format!("what uid {fu} owns may only hold what it owns"),
            _ => format!("uid {fu} could have planted it"),
        };
        format!("{step}{after}: an unsafe path ({why})")
    }
}

/// Why a resolution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A system call failed on the component at `at` (ELOOP: more than
    /// [`MAX_LINKS`] symlinks; ENOTDIR: a component on the way is not a
    /// directory; EISDIR: a DEST names no file).
    Io {
        /// What failed.
        errno: Errno,
        /// The component, as resolved so far.
        at: PathBuf,
    },
    /// An unsafe step (see [the rule](self#the-rule)).
    Unsafe(Box<Unsafe>),
}

impl Error {
    /// The errno of an I/O failure.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Io { errno, .. } => Some(*errno),
            Error::Unsafe(_) => None,
        }
    }

    fn io(errno: Errno, at: &Path) -> Error {
        Error::Io {
            errno,
            at: at.to_path_buf(),
        }
    }
}

/// What to do with missing directories on the way to a DEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dirs {
    /// Only look: a missing directory ends the walk. With a uid, the
    /// directory that would be created there is checked as owned by it.
    Look(Option<u32>),
    /// Create missing directories (mode 0777 less the umask), each given to
    /// this (uid, gid) when set, else owned by envinit's own ids.
    Make(Option<(u32, u32)>),
}

/// The directory a DEST goes in, reached safely: write with `*at` calls
/// relative to [`Parent::fd`], and name the file [`Parent::name`].
#[derive(Debug)]
pub struct Parent {
    /// The directory (`O_PATH`, or read-only for one just created).
    pub fd: OwnedFd,
    /// Its device and inode (one directory may hold several DESTs).
    pub id: (u64, u64),
    /// Its path as resolved.
    pub path: PathBuf,
    /// The last component of the DEST: never `.`, `..` or empty.
    pub name: OsString,
}

/// A path resolved to the end, symlinks followed: a file to read or a
/// directory to list.
#[derive(Debug)]
pub struct Found {
    /// The directory it was found in, and its name there (`None` for a
    /// directory reached by `..` or for `/`).
    parent: Option<(OwnedFd, OsString)>,
    fd: OwnedFd,
    st: FileStat,
    path: PathBuf,
}

/// Resolves `path` to the end, following symlinks (also the last
/// component), under [the rule](self#the-rule).
pub fn find(path: &Path) -> Result<Found, Error> {
    let (walk, mut todo) = Walk::start(path)?;
    walk.resolve(&mut todo)
}

/// Resolves the directory a DEST goes in (every component but the last,
/// symlinks followed) under [the rule](self#the-rule). The last component
/// is not looked at: the writer replaces it, never follows it. `Ok(None)`
/// when a directory is missing and `dirs` is [`Dirs::Look`].
pub fn parent(path: &Path, dirs: Dirs) -> Result<Option<Parent>, Error> {
    let name = match path.components().next_back() {
        Some(Component::Normal(name)) => name.to_os_string(),
        _ => return Err(Error::io(Errno::EISDIR, path)),
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let (mut walk, mut todo) = Walk::start(dir)?;
    if !walk.resolve_dirs(&mut todo, dirs)? {
        return Ok(None);
    }
    Ok(Some(Parent {
        id: (walk.st.st_dev, walk.st.st_ino),
        fd: walk.dir,
        path: walk.path,
        name,
    }))
}

impl Parent {
    /// The file DEST names now, read for comparing with what would replace
    /// it (a reload, `--diff`): `Ok(None)` when there is none. Nothing is
    /// followed or opened that the rule would refuse: the last component
    /// must be a regular file (a symlink there is ELOOP, anything else
    /// EINVAL), owned by the directory's owner when that is not root
    /// (EPERM: a hard link the user planted to a file of root's), at most
    /// `limit` bytes (EFBIG); it is opened without following and without
    /// blocking, and checked to be that same file (ESTALE).
    pub fn read_existing(&self, limit: u64) -> Result<Option<(Vec<u8>, FileStat)>, Errno> {
        use std::io::Read;
        let name = self.name.as_os_str();
        let st =
            match nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            {
                Ok(st) => st,
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(e),
            };
        match Kind::of(&st) {
            Kind::File => {}
            Kind::Symlink => return Err(Errno::ELOOP),
            _ => return Err(Errno::EINVAL),
        }
        let dir = fstat(&self.fd)?;
        if dir.st_uid != 0 && st.st_uid != dir.st_uid {
            return Err(Errno::EPERM);
        }
        if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
            return Err(Errno::EFBIG);
        }
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let now = fstat(&fd)?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(Errno::ESTALE);
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| errno_of(&e))?;
        if bytes.len() as u64 > limit {
            return Err(Errno::EFBIG);
        }
        Ok(Some((bytes, now)))
    }
}

impl Found {
    /// What it is (after following symlinks: never [`Kind::Symlink`]).
    pub fn kind(&self) -> Kind {
        Kind::of(&self.st)
    }

    /// Its status, from its own descriptor.
    pub fn stat(&self) -> &FileStat {
        &self.st
    }

    /// Its path as resolved (symlinks replaced by their targets).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its `O_PATH` descriptor: what was found and checked, for a call
    /// that must act on this very file or directory (an inotify watch,
    /// through `/proc/self/fd/N`).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the regular file found for reading: relative to the directory
    /// it was found in, without following, without blocking, and checked
    /// to be the very file found (EINVAL for anything but a regular file;
    /// ESTALE when it was replaced since).
    pub fn open_read(&self) -> Result<File, Error> {
        let fail = |errno| Error::io(errno, &self.path);
        let Some((dir, name)) = self.parent.as_ref().filter(|_| self.kind() == Kind::File) else {
            return Err(fail(Errno::EINVAL));
        };
        let fd = openat(
            dir,
            name.as_os_str(),
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        let st = fstat(&fd).map_err(fail)?;
        if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino) {
            return Err(fail(Errno::ESTALE));
        }
        Ok(File::from(fd))
    }

    /// The names in the directory found (not `.` and `..`), sorted.
    pub fn list(&self) -> Result<BTreeSet<OsString>, Error> {
        let fail = |errno| Error::io(errno, &self.path);
        let mut dir = open_listing(&self.fd).map_err(fail)?;
        let mut names = BTreeSet::new();
        for entry in dir.iter() {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.insert(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(names)
    }

    /// Resolves the entry `name` of the directory found, as [`find`] would
    /// resolve its path (symlinks followed, the same rule).
    pub fn child(&self, name: &OsStr) -> Result<Found, Error> {
        let fail = |errno| Error::io(errno, &self.path);
        if self.kind() != Kind::Directory {
            return Err(fail(Errno::ENOTDIR));
        }
        let dir = self.fd.try_clone().map_err(|e| fail(errno_of(&e)))?;
        let walk = Walk::new(dir, self.st, self.path.clone());
        let mut todo = Vec::new();
        push_components(Path::new(name), &mut todo);
        walk.resolve(&mut todo)
    }
}

/// envinit's effective uid: the owner of what it creates.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// Removes every entry of the directory `dir` whose name `matches` (files
/// only: unlinkat without AT_REMOVEDIR), relative to `dir`. A directory
/// that cannot be listed is left alone; returns how many were removed.
pub fn remove_matching(dir: &OwnedFd, matches: impl Fn(&[u8]) -> bool) -> usize {
    let Ok(mut listing) = open_listing(dir) else {
        return 0;
    };
    let mut doomed = Vec::new();
    for entry in listing.iter().flatten() {
        if matches(entry.file_name().to_bytes()) {
            doomed.push(entry.file_name().to_owned());
        }
    }
    doomed
        .iter()
        .filter(|name| {
            nix::unistd::unlinkat(
                dir,
                name.as_c_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .is_ok()
        })
        .count()
}

/// A readable descriptor of the directory `fd` (which may be `O_PATH`):
/// `.` relative to itself, so the very same directory.
fn open_listing(fd: &OwnedFd) -> nix::Result<Dir> {
    Dir::openat(
        fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the directory `fd` (which may be `O_PATH`) read-only, for fsync.
pub fn reopen_dir(fd: &OwnedFd) -> nix::Result<File> {
    openat(
        fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
}

/// The errno behind an I/O error (EIO if it carries none).
fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// One component still to walk.
enum Next {
    Name(OsString),
    Up,
}

/// Pushes the components of `path` on the stack `todo` (the next one last),
/// `.` left out; true when `path` is absolute.
fn push_components(path: &Path, todo: &mut Vec<Next>) -> bool {
    let mut absolute = false;
    let start = todo.len();
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => absolute = true,
            Component::CurDir => {}
            Component::ParentDir => todo.push(Next::Up),
            Component::Normal(name) => todo.push(Next::Name(name.to_os_string())),
        }
    }
    todo[start..].reverse();
    absolute
}

fn o_path() -> OFlag {
    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// The walk's position.
struct Walk {
    /// The directory the walk is in.
    dir: OwnedFd,
    st: FileStat,
    path: PathBuf,
    /// The owner of what the next step goes from: the directory, or the
    /// symlink just read when `from_link` (then it is `last_link`).
    from_uid: u32,
    from_link: bool,
    /// The last symlink read: its path, owner and target (for messages).
    last_link: Option<(PathBuf, u32, PathBuf)>,
    links: usize,
}

/// What one step reached.
enum Step {
    /// A directory: the walk is in it now.
    Dir,
    /// The last component, not a directory: its descriptor and status.
    Leaf(OwnedFd, FileStat, OsString),
    /// A missing directory (its path), with [`Dirs::Look`].
    Missing(PathBuf),
}

/// `openat` then `fstat` on the new descriptor.
fn open_stat(dir: &OwnedFd, name: &OsStr, flags: OFlag) -> nix::Result<(OwnedFd, FileStat)> {
    let fd = openat(dir, name, flags, Mode::empty())?;
    let st = fstat(&fd)?;
    Ok((fd, st))
}

impl Walk {
    /// In the directory `dir`, nothing followed yet.
    fn new(dir: OwnedFd, st: FileStat, path: PathBuf) -> Walk {
        Walk {
            dir,
            st,
            path,
            from_uid: st.st_uid,
            from_link: false,
            last_link: None,
            links: 0,
        }
    }

    /// At `/`, with the components of `path` (made absolute against the
    /// current directory when relative) to walk.
    fn start(path: &Path) -> Result<(Walk, Vec<Next>), Error> {
        let mut todo = Vec::new();
        if !push_components(path, &mut todo) {
            let cwd = nix::unistd::getcwd().map_err(|e| Error::io(e, Path::new(".")))?;
            let mut all = Vec::new();
            push_components(&cwd, &mut all);
            todo.extend(all);
        }
        let (fd, st) = root()?;
        Ok((Walk::new(fd, st, PathBuf::from("/")), todo))
    }

    /// Checks the step from what the walk goes from to `to`, a `kind`
    /// owned by `uid` at `path` (see the module doc); `up` for `..`.
    fn check(&self, uid: u32, kind: Kind, path: &Path, up: bool) -> Result<(), Error> {
        if self.from_uid == 0 || self.from_uid == uid {
            return Ok(());
        }
        Err(self.refusal(uid, kind, path, up))
    }

    #[cold]
    fn refusal(&self, uid: u32, kind: Kind, path: &Path, up: bool) -> Error {
        let link = self.last_link.as_ref().map(|(path, uid, target)| {
            let node = Node {
                path: path.clone(),
                kind: Kind::Symlink,
                uid: *uid,
            };
            (node, target.clone())
        });
        let (from, via, after) = match link {
            Some((node, target)) if self.from_link => (node, Via::Link(target), None),
            after => {
                let dir = Node {
                    path: self.path.clone(),
                    kind: Kind::Directory,
                    uid: self.from_uid,
                };
                (dir, if up { Via::Parent } else { Via::Entry }, after)
            }
        };
        let to = Node {
            path: path.to_path_buf(),
            kind,
            uid,
        };
        Error::Unsafe(Box::new(Unsafe {
            from,
            to,
            via,
            after,
        }))
    }

    /// Moves into the directory `fd`.
    fn enter(&mut self, fd: OwnedFd, st: FileStat, path: PathBuf) {
        self.from_uid = st.st_uid;
        self.from_link = false;
        self.dir = fd;
        self.st = st;
        self.path = path;
    }

    /// Walks `todo` to the end; the last component may be anything.
    fn resolve(mut self, todo: &mut Vec<Next>) -> Result<Found, Error> {
        while let Some(next) = todo.pop() {
            let last = todo.is_empty();
            match self.step(next, todo, Dirs::Look(None), last)? {
                Step::Dir => {}
                Step::Missing(path) => return Err(Error::io(Errno::ENOENT, &path)),
                Step::Leaf(fd, st, name) => {
                    return Ok(Found {
                        path: self.path.join(&name),
                        parent: Some((self.dir, name)),
                        fd,
                        st,
                    });
                }
            }
        }
        self.arrived()?;
        Ok(Found {
            parent: None,
            fd: self.dir,
            st: self.st,
            path: self.path,
        })
    }

    /// At the end of the path, in a directory: when the last component was
    /// a symlink whose target ended here (`..`, `sub/..`), its step to
    /// this directory is checked.
    fn arrived(&self) -> Result<(), Error> {
        self.check(self.st.st_uid, Kind::Directory, &self.path, false)
    }

    /// Walks `todo` to the end, every component a directory (created or
    /// looked for as `dirs` says); false when one is missing.
    fn resolve_dirs(&mut self, todo: &mut Vec<Next>, dirs: Dirs) -> Result<bool, Error> {
        while let Some(next) = todo.pop() {
            match self.step(next, todo, dirs, false)? {
                Step::Dir => {}
                Step::Missing(_) => return Ok(false),
                Step::Leaf(..) => return Err(Error::io(Errno::ENOTDIR, &self.path)),
            }
        }
        self.arrived()?;
        Ok(true)
    }

    /// One component. `last`: a component that is not a directory ends
    /// the walk (a [`Step::Leaf`]) instead of failing with ENOTDIR.
    fn step(
        &mut self,
        next: Next,
        todo: &mut Vec<Next>,
        dirs: Dirs,
        last: bool,
    ) -> Result<Step, Error> {
        let name = match next {
            Next::Up => {
                let (fd, st) =
                    open_stat(&self.dir, OsStr::new(".."), o_path() | OFlag::O_DIRECTORY)
                        .map_err(|e| Error::io(e, &self.path))?;
                let mut path = self.path.clone();
                path.pop();
                self.check(st.st_uid, Kind::Directory, &path, true)?;
                self.enter(fd, st, path);
                return Ok(Step::Dir);
            }
            Next::Name(name) => name,
        };
        let path = self.path.join(&name);
        let (fd, st) = match open_stat(&self.dir, &name, o_path()) {
            Ok(found) => found,
            Err(Errno::ENOENT) => match dirs {
                Dirs::Look(uid) => {
                    if let Some(uid) = uid {
                        self.check_created(&path, uid)?;
                    }
                    return Ok(Step::Missing(path));
                }
                Dirs::Make(owner) => self.make(&name, &path, owner)?,
            },
            Err(errno) => return Err(Error::io(errno, &path)),
        };
        let kind = Kind::of(&st);
        self.check(st.st_uid, kind, &path, false)?;
        match kind {
            Kind::Directory => {
                self.enter(fd, st, path);
                Ok(Step::Dir)
            }
            Kind::Symlink => {
                self.follow(&fd, path, st.st_uid, todo)?;
                Ok(Step::Dir)
            }
            _ if last => Ok(Step::Leaf(fd, st, name)),
            _ => Err(Error::io(Errno::ENOTDIR, &path)),
        }
    }

    /// Reads the symlink `fd` at `path` (already checked as an entry) and
    /// puts its target before what is left; an absolute one restarts at
    /// `/`.
    fn follow(
        &mut self,
        fd: &OwnedFd,
        path: PathBuf,
        uid: u32,
        todo: &mut Vec<Next>,
    ) -> Result<(), Error> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(Error::io(Errno::ELOOP, &path));
        }
        let target = match readlinkat(fd, "") {
            Ok(target) if !target.is_empty() => PathBuf::from(target),
            Ok(_) => return Err(Error::io(Errno::ENOENT, &path)),
            Err(errno) => return Err(Error::io(errno, &path)),
        };
        let absolute = push_components(&target, todo);
        if todo.len() > MAX_PENDING {
            return Err(Error::io(Errno::ENAMETOOLONG, &path));
        }
        self.last_link = Some((path, uid, target));
        self.from_uid = uid;
        self.from_link = true;
        if absolute {
            let (fd, st) = root()?;
            let root = PathBuf::from("/");
            self.check(st.st_uid, Kind::Directory, &root, false)?;
            self.enter(fd, st, root);
        }
        Ok(())
    }

    /// Checks, before making it, the directory `path` that would be owned
    /// by `uid`: the same step as once it exists.
    fn check_created(&self, path: &Path, uid: u32) -> Result<(), Error> {
        match self.check(uid, Kind::Directory, path, false) {
            Err(Error::Unsafe(mut refused)) if refused.via == Via::Entry => {
                refused.via = Via::Created;
                Err(Error::Unsafe(refused))
            }
            other => other,
        }
    }

    /// Makes the missing directory `name`, gives it to `owner` when it is
    /// the empty directory just made, and returns it opened read-only.
    fn make(
        &mut self,
        name: &OsStr,
        path: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<(OwnedFd, FileStat), Error> {
        let fail = |errno| Error::io(errno, path);
        let euid = euid();
        self.check_created(path, owner.map_or(euid, |(uid, _)| uid))?;
        let made = match mkdirat(&self.dir, name, Mode::from_bits_truncate(0o777)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(errno) => return Err(fail(errno)),
        };
        // Read-only rather than O_PATH: fchown needs a real descriptor. A
        // symlink swapped in fails here (O_NOFOLLOW).
        let (fd, mut st) = open_stat(
            &self.dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )
        .map_err(fail)?;
        if let Some((uid, gid)) = owner {
            // Only the directory just made: owned by envinit, on the same
            // filesystem, empty. Anything else (a directory moved here in
            // between) keeps its owner and meets the rule as it is.
            let ours = made
                && st.st_uid == euid
                && st.st_dev == self.st.st_dev
                && is_empty(&fd).map_err(fail)?;
            if ours && (st.st_uid, st.st_gid) != (uid, gid) {
                std::os::unix::fs::fchown(&fd, Some(uid), Some(gid))
                    .map_err(|e| fail(errno_of(&e)))?;
                st = fstat(&fd).map_err(fail)?;
            }
        }
        Ok((fd, st))
    }
}

/// `/`, opened `O_PATH`, and its status.
fn root() -> Result<(OwnedFd, FileStat), Error> {
    let root = Path::new("/");
    let fd = nix::fcntl::open(root, o_path() | OFlag::O_DIRECTORY, Mode::empty())
        .map_err(|e| Error::io(e, root))?;
    let st = fstat(&fd).map_err(|e| Error::io(e, root))?;
    Ok((fd, st))
}

/// Whether the directory `fd` has no entry but `.` and `..`.
fn is_empty(fd: &impl AsFd) -> nix::Result<bool> {
    let mut dir = Dir::openat(
        fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    for entry in dir.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, lchown, symlink};

    const USER: u32 = 4242;
    const OTHER: u32 = 5353;

    /// A fresh root-owned directory (0755) under the temp directory; None
    /// (skip) when not root: the tests give directories to other uids.
    fn base(name: &str) -> Option<PathBuf> {
        if euid() != 0 {
            eprintln!("SKIP: the chase tests need root");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("envinit-chase-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Some(dir)
    }

    use std::os::unix::fs::PermissionsExt;

    fn dir_of(path: &Path, uid: u32) {
        fs::create_dir_all(path).unwrap();
        lchown(path, Some(uid), Some(uid)).unwrap();
    }

    fn link_of(target: impl AsRef<Path>, path: &Path, uid: u32) {
        symlink(target, path).unwrap();
        lchown(path, Some(uid), Some(uid)).unwrap();
    }

    fn file_of(path: &Path, text: &str, uid: u32) {
        fs::write(path, text).unwrap();
        lchown(path, Some(uid), Some(uid)).unwrap();
    }

    fn refused(result: Result<impl std::fmt::Debug, Error>) -> Unsafe {
        match result {
            Err(Error::Unsafe(refused)) => *refused,
            other => panic!("not refused: {other:?}"),
        }
    }

    fn errno(result: Result<impl std::fmt::Debug, Error>) -> Errno {
        match result {
            Err(Error::Io { errno, .. }) => errno,
            other => panic!("no I/O error: {other:?}"),
        }
    }

    fn read(path: &Path) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut find(path).unwrap().open_read().unwrap(), &mut text)
            .unwrap();
        text
    }

    #[test]
    fn a_symlink_at_the_last_component_is_left_to_the_writer() {
        let Some(b) = base("last") else { return };
        dir_of(&b.join("u"), USER);
        link_of("/etc/passwd", &b.join("u/app.ini"), USER);
        symlink("/etc/passwd", b.join("root.ini")).unwrap();
        for dest in [b.join("u/app.ini"), b.join("root.ini")] {
            let parent = parent(&dest, Dirs::Look(None)).unwrap().unwrap();
            assert_eq!(parent.path, dest.parent().unwrap());
            assert_eq!(parent.name, dest.file_name().unwrap());
        }
        assert_eq!(
            errno(parent(&b.join("u/.."), Dirs::Look(None))),
            Errno::EISDIR
        );
        assert_eq!(
            errno(parent(Path::new("/"), Dirs::Look(None))),
            Errno::EISDIR
        );
    }

    /// The issue's reproduction: the user's symlink `cfg/conf` to a root
    /// directory, absolute and relative.
    #[test]
    fn a_users_symlink_on_the_way_to_a_root_directory_is_refused() {
        let Some(b) = base("middle") else { return };
        fs::create_dir(b.join("rootdir")).unwrap();
        dir_of(&b.join("cfg"), USER);
        link_of(b.join("rootdir"), &b.join("cfg/conf"), USER);
        link_of("../rootdir", &b.join("cfg/rel"), USER);
        let r = refused(parent(&b.join("cfg/conf/app.ini"), Dirs::Look(None)));
        assert_eq!(r.via, Via::Link(b.join("rootdir")));
        assert_eq!(
            (r.from.path.clone(), r.from.uid),
            (b.join("cfg/conf"), USER)
        );
        assert_eq!((r.to.path.clone(), r.to.uid), (PathBuf::from("/"), 0));
        assert_eq!(
            r.describe(),
            format!(
                "{}/cfg/conf is a symlink owned by uid 4242 pointing to {}/rootdir (through /, owned by uid 0): an unsafe path (uid 4242 could have planted it)",
                b.display(),
                b.display()
            )
        );
        assert_eq!(
            r.describe_owners(),
            "a symlink owned by uid 4242 leads to a directory owned by uid 0: an unsafe path (uid 4242 could have planted it)"
        );
        // Relative: the step from the symlink to `..` is the one refused
        // (systemd would check it against cfg/ and let it pass).
        let r = refused(parent(&b.join("cfg/rel/app.ini"), Dirs::Look(None)));
        assert_eq!(r.via, Via::Link("../rootdir".into()));
        assert_eq!((r.to.path.clone(), r.to.uid), (b.clone(), 0));
        // The same when reading, and with directories to make.
        fs::write(b.join("rootdir/secret"), "root's").unwrap();
        refused(find(&b.join("cfg/conf/secret")));
        refused(find(&b.join("cfg/rel/secret")));
        refused(parent(
            &b.join("cfg/conf/new/app.ini"),
            Dirs::Make(Some((USER, USER))),
        ));
        assert!(!b.join("rootdir/new").exists());
    }

    #[test]
    fn a_root_directory_in_a_users_directory_is_refused() {
        // systemd refuses it too: the user can move such a directory around
        // in what it owns, or put it where another one was.
        let Some(b) = base("rootinuser") else { return };
        dir_of(&b.join("u"), USER);
        fs::create_dir(b.join("u/r")).unwrap();
        file_of(&b.join("u/rootfile"), "x", 0);
        let r = refused(parent(&b.join("u/r/app.ini"), Dirs::Look(None)));
        assert_eq!(r.via, Via::Entry);
        assert_eq!(
            r.describe(),
            format!(
                "{0}/u/r is a directory owned by uid 0 in {0}/u, a directory owned by uid 4242: an unsafe path (uid 4242 could have planted it)",
                b.display()
            )
        );
        // A root file in the user's directory is not read either...
        assert_eq!(refused(find(&b.join("u/rootfile"))).to.kind, Kind::File);
        // ...nor another user's directory or symlink.
        dir_of(&b.join("u/other"), OTHER);
        link_of("/", &b.join("u/otherlink"), OTHER);
        refused(parent(&b.join("u/other/x"), Dirs::Look(None)));
        refused(parent(&b.join("u/otherlink/x"), Dirs::Look(None)));
    }

    #[test]
    fn dot_dot_out_of_a_users_directory_into_roots_is_refused() {
        let Some(b) = base("dotdot") else { return };
        dir_of(&b.join("u"), USER);
        dir_of(&b.join("u/sub"), USER);
        // Up within the user's directories: fine.
        let p = parent(&b.join("u/sub/../app.ini"), Dirs::Look(None))
            .unwrap()
            .unwrap();
        assert_eq!(p.path, b.join("u"));
        // Up out of them into root's: refused.
        let r = refused(parent(&b.join("u/../app.ini"), Dirs::Look(None)));
        assert_eq!(r.via, Via::Parent);
        assert_eq!((r.from.path, r.to.path), (b.join("u"), b.clone()));
        refused(find(&b.join("u/sub/../..")));
        // From root's directories `..` goes anywhere, and stops at /.
        let p = parent(
            &b.join("../../../../..")
                .join(b.strip_prefix("/").unwrap())
                .join("x"),
            Dirs::Look(None),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.path, b);
    }

    #[test]
    fn symlinks_of_root_go_anywhere_and_a_users_stay_in_its_own() {
        let Some(b) = base("targets") else { return };
        dir_of(&b.join("u"), USER);
        dir_of(&b.join("u/sub"), USER);
        file_of(&b.join("u/sub/conf"), "user's", USER);
        // Root's symlinks, absolute and relative, chained, into root's or
        // the user's directories.
        symlink(b.join("u"), b.join("abs")).unwrap();
        symlink("u/sub", b.join("rel")).unwrap();
        symlink("abs", b.join("chain")).unwrap();
        assert_eq!(read(&b.join("abs/sub/conf")), "user's");
        assert_eq!(read(&b.join("rel/conf")), "user's");
        assert_eq!(read(&b.join("chain/sub/conf")), "user's");
        assert_eq!(
            find(&b.join("chain/sub/conf")).unwrap().path(),
            b.join("u/sub/conf")
        );
        // The user's relative symlinks within its own directories: fine.
        link_of("sub/conf", &b.join("u/relfile"), USER);
        link_of("sub", &b.join("u/reldir"), USER);
        link_of(".", &b.join("u/dot"), USER);
        assert_eq!(read(&b.join("u/relfile")), "user's");
        assert_eq!(read(&b.join("u/reldir/conf")), "user's");
        assert_eq!(read(&b.join("u/dot/dot/sub/conf")), "user's");
        // An absolute one restarts at /, which is root's: refused even when
        // it points back into the user's own directory.
        link_of(b.join("u/sub"), &b.join("u/absdir"), USER);
        let r = refused(find(&b.join("u/absdir/conf")));
        assert_eq!(r.to.path, PathBuf::from("/"));
        // A root symlink in the user's directory is the user's to move.
        symlink("sub", b.join("u/rootlink")).unwrap();
        assert_eq!(
            refused(find(&b.join("u/rootlink/conf"))).to.kind,
            Kind::Symlink
        );
    }

    #[test]
    fn symlink_loops_end_with_eloop() {
        let Some(b) = base("loops") else { return };
        symlink("b", b.join("a")).unwrap();
        symlink("a", b.join("b")).unwrap();
        symlink("self", b.join("self")).unwrap();
        assert_eq!(errno(find(&b.join("a"))), Errno::ELOOP);
        assert_eq!(errno(find(&b.join("self/x"))), Errno::ELOOP);
        assert_eq!(
            errno(parent(&b.join("a/x"), Dirs::Make(None))),
            Errno::ELOOP
        );
        // 40 links are fine, 41 are not.
        fs::write(b.join("end"), "end").unwrap();
        symlink("end", b.join("l0")).unwrap();
        for n in 1..=MAX_LINKS {
            symlink(format!("l{}", n - 1), b.join(format!("l{n}"))).unwrap();
        }
        assert_eq!(read(&b.join(format!("l{}", MAX_LINKS - 1))), "end");
        assert_eq!(errno(find(&b.join(format!("l{MAX_LINKS}")))), Errno::ELOOP);
        // Targets that pile up components end too.
        symlink("x/".repeat(2000), b.join("w0")).unwrap();
        symlink(format!("w0/{}", "x/".repeat(2000)), b.join("w1")).unwrap();
        symlink(format!("w1/{}", "x/".repeat(2000)), b.join("w2")).unwrap();
        assert_eq!(errno(find(&b.join("w1"))), Errno::ENOENT);
        assert_eq!(errno(find(&b.join("w2"))), Errno::ENAMETOOLONG);
    }

    #[test]
    fn missing_directories_are_made_for_the_owner_where_the_rule_allows() {
        let Some(b) = base("make") else { return };
        dir_of(&b.join("u"), USER);
        dir_of(&b.join("other"), OTHER);
        // In root's directory and in the user's own: made, given to it.
        for dest in [b.join("new/deeper/app.ini"), b.join("u/new/deeper/app.ini")] {
            assert!(parent(&dest, Dirs::Look(Some(USER))).unwrap().is_none());
            let p = parent(&dest, Dirs::Make(Some((USER, 777))))
                .unwrap()
                .unwrap();
            assert_eq!(p.path, dest.parent().unwrap());
            for dir in [
                dest.parent().unwrap(),
                dest.parent().unwrap().parent().unwrap(),
            ] {
                let m = fs::metadata(dir).unwrap();
                assert_eq!((m.uid(), m.gid()), (USER, 777), "{}", dir.display());
            }
            // Existing now: found as they are.
            let again = parent(&dest, Dirs::Make(Some((USER, 777))))
                .unwrap()
                .unwrap();
            assert_eq!(again.id, p.id);
        }
        assert_eq!(
            fs::metadata(&b).unwrap().uid(),
            0,
            "existing ones keep their owner"
        );
        // In another user's directory: refused before anything is made.
        let dest = b.join("other/new/app.ini");
        let r = refused(parent(&dest, Dirs::Look(Some(USER))));
        assert_eq!(r.via, Via::Created);
        refused(parent(&dest, Dirs::Make(Some((USER, USER)))));
        assert!(!b.join("other/new").exists());
        // Without an owner they are root's: not in the user's directory.
        refused(parent(&b.join("u/rootnew/app.ini"), Dirs::Make(None)));
        assert!(!b.join("u/rootnew").exists());
        // A symlink where a directory would be made is walked as any other.
        fs::create_dir(b.join("rootdir")).unwrap();
        link_of(b.join("rootdir"), &b.join("u/planted"), USER);
        refused(parent(
            &b.join("u/planted/sub/app.ini"),
            Dirs::Make(Some((USER, USER))),
        ));
        assert!(!b.join("rootdir/sub").exists());
        // A file on the way is not a directory.
        fs::write(b.join("file"), "").unwrap();
        assert_eq!(
            errno(parent(&b.join("file/x/y"), Dirs::Make(None))),
            Errno::ENOTDIR
        );
    }

    #[test]
    fn only_regular_files_are_opened_and_relative_paths_start_at_the_cwd() {
        let Some(b) = base("files") else { return };
        nix::unistd::mkfifo(&b.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        let fifo = find(&b.join("fifo")).unwrap();
        assert_eq!(fifo.kind(), Kind::Special);
        assert_eq!(errno(fifo.open_read()), Errno::EINVAL);
        assert_eq!(errno(find(&b.join("missing"))), Errno::ENOENT);
        assert_eq!(errno(find(&b.join("missing/x"))), Errno::ENOENT);
        // A file replaced after it was found is not read in its place.
        fs::write(b.join("f"), "first").unwrap();
        let found = find(&b.join("f")).unwrap();
        fs::rename(b.join("f"), b.join("g")).unwrap();
        fs::write(b.join("f"), "second").unwrap();
        assert_eq!(errno(found.open_read()), Errno::ESTALE);
        let cwd = std::env::current_dir().unwrap();
        let found = find(Path::new("Cargo.toml")).unwrap();
        assert_eq!(found.path(), cwd.join("Cargo.toml"));
        let dir = find(Path::new("src/../src/appfs")).unwrap();
        assert!(dir.list().unwrap().contains(OsStr::new("chase.rs")));
        assert_eq!(
            dir.child(OsStr::new("chase.rs")).unwrap().kind(),
            Kind::File
        );
    }
}
