//! Creds: acting with the app's filesystem credentials (see [`super`]).
//!
//! A [`Creds`] is whose rights envinit's path operations for the app use:
//! envinit's own ([`Creds::own`]: without `--user` the app is root anyway,
//! or envinit already runs as the app's user), or the `--user`'s
//! ([`Creds::of`]). [`Creds::run`] runs a closure with the calling thread's
//! filesystem credentials switched to the app's: supplementary groups
//! (`setgroups`), fsgid, fsuid, in that order, and back to envinit's own
//! afterwards. A non-zero fsuid also drops CAP_DAC_OVERRIDE,
//! CAP_DAC_READ_SEARCH and the other file capabilities from the effective
//! set, so the kernel checks exactly what it checks for the app: a symlink
//! or hard link the app planted, a directory it cannot search, a root-only
//! file, `/proc/1/environ` (mode 0400, owned by root) all fail as they would
//! for the app itself.
//!
//! Promises:
//! - The switch is verified (`setfsuid`/`setfsgid` report nothing on
//!   failure: they are asked again); if it did not take, the closure is not
//!   run (never as root in the app's place) and the call is an error.
//! - The system calls are the raw ones, which act on the calling thread
//!   only (envinit is single-threaded; a test thread switches only itself).
//!   musl's `setgroups` would change every thread's groups.
//! - [`Creds::open_regular`] opens nothing but a regular file for reading,
//!   never blocks and has no side effect on anything else (a FIFO, a
//!   device, a socket are refused before any open for reading), and no
//!   file of /proc: there, some files readable by all (`/proc/1/maps`,
//!   `/proc/1/stat`) show more when a process opens its own, a check the
//!   app's credentials do not change (the kernel lets a process read
//!   itself whoever its fsuid).
//! - Nothing at all happens, and nothing is allocated, for [`Creds::own`].

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::libc;

/// A file's identity: its device and inode numbers.
pub type FileId = (u64, u64);

/// Whose rights envinit's path operations for the app use.
pub struct Creds(Option<Box<Switch>>);

/// The app's filesystem credentials, and envinit's own to return to.
struct Switch {
    uid: u32,
    gid: u32,
    groups: Box<[libc::gid_t]>,
    own_uid: u32,
    own_gid: u32,
    own_groups: Box<[libc::gid_t]>,
}

/// Why [`Creds::open_regular`] opened nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The path names a directory, FIFO, device or socket.
    NotRegular,
    /// The file is one of /proc's (see the module's promises).
    Proc,
    /// The system's reason (no such file, permission denied, ...). A file
    /// replaced under the path between the two steps of the open counts as
    /// not there (ENOENT): the change that replaced it is the caller's next
    /// event.
    Os(Errno),
}

impl OpenError {
    /// Not there (yet): no such file, or a component is not a directory.
    pub fn absent(self) -> bool {
        matches!(self, OpenError::Os(Errno::ENOENT | Errno::ENOTDIR))
    }

    /// The reason in words, for a warning.
    pub fn desc(self) -> &'static str {
        match self {
            OpenError::NotRegular => "not a regular file",
            OpenError::Proc => "a file of /proc",
            OpenError::Os(e) => e.desc(),
        }
    }
}

impl From<Errno> for OpenError {
    fn from(e: Errno) -> OpenError {
        OpenError::Os(e)
    }
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> OpenError {
        OpenError::Os(errno(&e))
    }
}

/// The errno of an I/O error from a system call.
fn errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// `setfsuid`/`setfsgid` with an id the kernel cannot map changes nothing
/// and returns the current one: how both are read.
const QUERY: libc::c_long = u32::MAX as libc::c_long;

impl Creds {
    /// envinit's own rights (root without `--user`, when the app is root
    /// too): path operations run as they are, at no cost.
    pub fn own() -> Creds {
        Creds(None)
    }

    /// The rights of the app (the `--user`: `uid`, `gid` and supplementary
    /// `groups`), with envinit's current ones (fsuid, fsgid, groups) saved
    /// to return to. Fails only if envinit's own groups cannot be read.
    pub fn of(uid: u32, gid: u32, groups: &[u32]) -> Result<Creds, Errno> {
        // SAFETY: setfsuid/setfsgid with an unmappable id change nothing
        // and return the current id; getgroups(0, NULL) only counts.
        let (own_uid, own_gid, count) = unsafe {
            (
                libc::syscall(libc::SYS_setfsuid, QUERY),
                libc::syscall(libc::SYS_setfsgid, QUERY),
                libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<libc::gid_t>()),
            )
        };
        let count = usize::try_from(Errno::result(count)?).map_err(|_| Errno::EINVAL)?;
        let mut own_groups = vec![0 as libc::gid_t; count].into_boxed_slice();
        // SAFETY: the kernel writes at most `count` gids into the slice we
        // own, which has room for exactly that many.
        let got = unsafe {
            libc::syscall(
                libc::SYS_getgroups,
                own_groups.len(),
                own_groups.as_mut_ptr(),
            )
        };
        if Errno::result(got)? as usize != own_groups.len() {
            // The groups changed between the two calls: nothing changes them.
            return Err(Errno::EAGAIN);
        }
        Ok(Creds(Some(Box::new(Switch {
            uid,
            gid,
            groups: groups.into(),
            own_uid: own_uid as u32,
            own_gid: own_gid as u32,
            own_groups,
        }))))
    }

    /// True for [`Creds::own`]: operations run with envinit's own rights.
    pub fn is_own(&self) -> bool {
        self.0.is_none()
    }

    /// Runs `action` with the calling thread's filesystem credentials
    /// switched to the app's, then switches back. An error means the
    /// switch (then `action` did not run) or the switch back failed.
    pub fn run<T>(&self, action: impl FnOnce() -> T) -> Result<T, Errno> {
        let Some(switch) = &self.0 else {
            return Ok(action());
        };
        if let Err(e) = switch.to_app() {
            // Whatever took effect is undone; the action never runs as root.
            let _ = switch.back();
            return Err(e);
        }
        let result = action();
        switch.back()?;
        Ok(result)
    }

    /// `stat(2)` of `path` (symlinks followed) with these rights.
    pub fn stat(&self, path: &Path) -> Result<Metadata, Errno> {
        self.run(|| std::fs::metadata(path))?.map_err(|e| errno(&e))
    }

    /// Opens `path` for reading, with these rights, if it is a regular
    /// file; returns the file (non-blocking, close-on-exec) and its
    /// identity.
    ///
    /// First an `O_PATH` open (no side effect, never blocks, follows
    /// symlinks as the app would) and `fstat`: anything but a regular file
    /// is refused there. Then that very inode is opened for reading through
    /// `/proc/self/fd/N`, so the kernel checks read permission on it with
    /// these rights (a hard link or a symlink into a root-only place fails
    /// as it would for the app). Without /proc, the path is opened again
    /// and must still be the same inode. Either way the file opened is
    /// checked to be the one that was looked at.
    pub fn open_regular(&self, path: &Path) -> Result<(File, FileId), OpenError> {
        self.run(|| open_regular_now(path, true))?
    }
}

impl Switch {
    /// Groups, fsgid, fsuid: each later step needs the earlier ones' rights
    /// (a non-zero fsuid first would not stop them, but this is the order
    /// in which nothing is ever more than the app's).
    fn to_app(&self) -> Result<(), Errno> {
        set_groups(&self.groups)?;
        set_id(libc::SYS_setfsgid, self.gid)?;
        set_id(libc::SYS_setfsuid, self.uid)
    }

    /// fsuid first: back to 0, it raises the file capabilities again.
    fn back(&self) -> Result<(), Errno> {
        let uid = set_id(libc::SYS_setfsuid, self.own_uid);
        let gid = set_id(libc::SYS_setfsgid, self.own_gid);
        let groups = set_groups(&self.own_groups);
        uid.and(gid).and(groups)
    }
}

/// The raw `setgroups` (this thread only).
fn set_groups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `groups.len()` gids from the slice we own.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// `setfsuid` or `setfsgid` (`call`), then asks again: the kernel reports
/// nothing when the change is refused.
fn set_id(call: libc::c_long, id: u32) -> Result<(), Errno> {
    // SAFETY: setfsuid/setfsgid take one integer and touch no memory.
    let now = unsafe {
        libc::syscall(call, libc::c_long::from(id));
        libc::syscall(call, QUERY)
    };
    match now as u32 == id {
        true => Ok(()),
        false => Err(Errno::EPERM),
    }
}

/// [`Creds::open_regular`] with the current credentials, once; without
/// `via_proc` (as when /proc is not mounted), by the path alone.
fn open_regular_now(path: &Path, via_proc: bool) -> Result<(File, FileId), OpenError> {
    // Not through std: its custom flags lose O_PATH under musl, whose
    // O_ACCMODE includes it (O_SEARCH), and the open would be for reading.
    let path_c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open reads the NUL-terminated path we own; the descriptor it
    // returns is new and ours alone.
    let handle = unsafe {
        let fd = Errno::result(libc::open(path_c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC))?;
        File::from(OwnedFd::from_raw_fd(fd))
    };
    let looked = handle.metadata()?;
    if !looked.file_type().is_file() {
        return Err(OpenError::NotRegular);
    }
    if nix::sys::statfs::fstatfs(&handle)?.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(OpenError::Proc);
    }
    let id = identity(&looked);
    let mut read = OpenOptions::new();
    read.read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let mut name = [0u8; 32];
    let reopened = match via_proc {
        true => read.open(Path::new(OsStr::from_bytes(fd_path(
            handle.as_raw_fd(),
            &mut name,
        )))),
        false => Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
    };
    let file = match reopened {
        Ok(file) => file,
        // No /proc (or not this process's): the path once more.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => read.open(path)?,
        Err(e) => return Err(e.into()),
    };
    if identity(&file.metadata()?) != id {
        return Err(OpenError::Os(Errno::ENOENT));
    }
    Ok((file, id))
}

/// `/proc/self/fd/N` for `fd`, written into `buf`.
fn fd_path(fd: i32, buf: &mut [u8; 32]) -> &[u8] {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, digit) in digits[..len].iter().rev().enumerate() {
        buf[PREFIX.len() + i] = *digit;
    }
    &buf[..PREFIX.len() + len]
}

fn identity(meta: &Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use std::io::Read;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    /// A uid and gid with no passwd entry (the tests run as root).
    const APP: u32 = 4242;

    fn app() -> Creds {
        Creds::of(APP, APP, &[APP]).unwrap()
    }

    fn root() -> bool {
        // SAFETY: geteuid takes nothing and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("SKIP: the credential tests need root");
        }
        root
    }

    /// A directory readable by everybody, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("envinit-creds-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            Scratch(dir)
        }

        fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read(creds: &Creds, path: &Path) -> Result<String, OpenError> {
        let (mut file, _) = creds.open_regular(path)?;
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        Ok(text)
    }

    fn fs_ids() -> (i64, i64) {
        // SAFETY: queries only (see QUERY).
        unsafe {
            (
                libc::syscall(libc::SYS_setfsuid, QUERY),
                libc::syscall(libc::SYS_setfsgid, QUERY),
            )
        }
    }

    #[test]
    fn the_switch_takes_and_is_undone() {
        if !root() {
            return;
        }
        let creds = app();
        let before = fs_ids();
        let inside = creds.run(fs_ids).unwrap();
        assert_eq!(inside, (i64::from(APP), i64::from(APP)));
        assert_eq!(fs_ids(), before);
        // Groups too: root's own (gid 0 among them) are not kept inside.
        let groups = creds
            .run(|| {
                let mut groups = [0 as libc::gid_t; 64];
                // SAFETY: room for 64 gids in the array we own.
                let n = unsafe {
                    libc::syscall(libc::SYS_getgroups, groups.len(), groups.as_mut_ptr())
                };
                groups[..n as usize].to_vec()
            })
            .unwrap();
        assert_eq!(groups, vec![APP]);
    }

    #[test]
    fn the_app_reads_what_it_may_and_nothing_else() {
        if !root() {
            return;
        }
        let dir = Scratch::new("rights");
        let public = dir.file("public", "public\n", 0o644);
        let secret = dir.file("secret", "secret\n", 0o600);
        // Group-readable by root's group: the app must not get it through
        // root's supplementary groups.
        let group = dir.file("group", "group\n", 0o640);
        let link = dir.0.join("link");
        symlink(&secret, &link).unwrap();
        let creds = app();
        assert_eq!(read(&creds, &public).unwrap(), "public\n");
        for path in [&secret, &group, &link] {
            assert_eq!(
                read(&creds, path),
                Err(OpenError::Os(Errno::EACCES)),
                "{path:?}"
            );
        }
        // A hard link is the same inode, checked the same way.
        let hard = dir.0.join("hard");
        std::fs::hard_link(&secret, &hard).unwrap();
        assert_eq!(read(&creds, &hard), Err(OpenError::Os(Errno::EACCES)));
        // Root's own rights still read it all.
        assert_eq!(read(&Creds::own(), &link).unwrap(), "secret\n");
    }

    #[test]
    fn the_proc_fd_reopen_is_allowed_to_the_same_process_under_another_fsuid() {
        if !root() {
            return;
        }
        // /proc/self/fd is owned by root and mode 0500: only the kernel's
        // same-thread-group rule (proc_fd_permission) lets the app's fsuid
        // through it. Were it refused, open_regular would fall back on the
        // path; check the /proc step itself here.
        let dir = Scratch::new("procfd");
        let public = dir.file("public", "public\n", 0o644);
        let got = app()
            .run(|| -> Result<String, Errno> {
                let handle =
                    nix::fcntl::open(&public, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
                let mut name = [0u8; 32];
                let fd = nix::fcntl::open(
                    fd_path(handle.as_raw_fd(), &mut name),
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let mut text = String::new();
                File::from(fd).read_to_string(&mut text).unwrap();
                Ok(text)
            })
            .unwrap();
        assert_eq!(got, Ok("public\n".to_string()));
    }

    #[test]
    fn without_proc_the_path_is_opened_again_with_the_same_rights() {
        if !root() {
            return;
        }
        let dir = Scratch::new("noproc");
        let public = dir.file("public", "public\n", 0o644);
        let secret = dir.file("secret", "secret\n", 0o600);
        let link = dir.0.join("link");
        symlink(&secret, &link).unwrap();
        let creds = app();
        let open = |path: &Path| creds.run(|| open_regular_now(path, false)).unwrap();
        let (mut file, _) = open(&public).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "public\n");
        assert_eq!(open(&link).err(), Some(OpenError::Os(Errno::EACCES)));
        assert_eq!(open(&secret).err(), Some(OpenError::Os(Errno::EACCES)));
    }

    #[test]
    fn files_of_proc_are_refused_even_those_readable_by_all() {
        // /proc/self/maps is 0444, but only a process itself (or a tracer)
        // may read it: envinit would read its own under any fsuid.
        for path in ["/proc/self/maps", "/proc/self/stat", "/proc/1/cmdline"] {
            assert_eq!(
                read(&Creds::own(), Path::new(path)),
                Err(OpenError::Proc),
                "{path}"
            );
        }
    }

    #[test]
    fn proc_environ_is_refused_to_the_app() {
        if !root() {
            return;
        }
        // This process's own environ is 0400 root: the app cannot read it,
        // although the same process could read itself as root.
        let creds = app();
        let own = PathBuf::from(format!("/proc/{}/environ", std::process::id()));
        assert_eq!(
            creds.run(|| open_regular_now(&own, true).err()).unwrap(),
            Some(OpenError::Proc)
        );
        assert_eq!(read(&creds, &own), Err(OpenError::Proc));
        // And were /proc allowed, the kernel itself would refuse it.
        let reopened = creds
            .run(|| nix::fcntl::open(&own, OFlag::O_RDONLY, Mode::empty()).err())
            .unwrap();
        assert_eq!(reopened, Some(Errno::EACCES));
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = Scratch::new("kinds");
        let fifo = dir.0.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o666)).unwrap();
        for (path, want) in [
            (fifo.as_path(), OpenError::NotRegular),
            (dir.0.as_path(), OpenError::NotRegular),
            (Path::new("/dev/null"), OpenError::NotRegular),
            (&dir.0.join("missing"), OpenError::Os(Errno::ENOENT)),
        ] {
            assert_eq!(read(&Creds::own(), path), Err(want), "{path:?}");
        }
        assert!(OpenError::Os(Errno::ENOTDIR).absent());
    }

    #[test]
    fn fd_paths_are_written_in_place() {
        let mut buf = [0u8; 32];
        assert_eq!(fd_path(0, &mut buf), b"/proc/self/fd/0");
        assert_eq!(fd_path(1234567, &mut buf), b"/proc/self/fd/1234567");
    }
}
