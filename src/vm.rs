//! VM mode: envinit as the init of a microVM booted from a container image
//! (docs/vm.md). The kernel starts envinit directly: nothing has mounted
//! /proc, /sys or /dev, the environment and arguments come from the kernel
//! command line, and PID 1 must never exit (the kernel panics).
//!
//! # What it owns
//!
//! - [`detect`]: is this a machine's init? `--vm on|off` / `ENVINIT_VM`,
//!   else `auto`: PID 1 with /proc not mounted. In a container this costs
//!   `getpid` and one `access`, nothing more.
//! - [`boot`]: mounts what is not mounted yet (the table [`MOUNTS`]),
//!   creating missing mount points; the /dev/fd, /dev/std* and /dev/ptmx
//!   links; console fds 0-2 from /dev/console when the kernel gave none
//!   (or gave the empty regular file `docker export` leaves there);
//!   Ctrl-Alt-Del as SIGINT instead of an instant reboot; loopback up.
//!   Then the image config (`--image-config`, default
//!   /etc/envinit/image.json) turned into envinit's arguments, environment
//!   and working directory (the rules are in `image`).
//! - [`settle`]: once the settings are read, the hostname, and the boot's
//!   warnings logged. The stop-signal rule of VM mode is the lifecycle's
//!   ([`crate::lifecycle::SuperviseSettings::for_vm`]).
//! - [`end`]: one console line with the exit code, sync, unmount (or
//!   remount read-only) everything, then power off or reboot. Never returns.
//!
//! # What it promises
//!
//! - A mount that fails is one line naming it and the errno, then [`end`]
//!   with exit code 71 (EX_OSERR): the machine powers off, it does not panic.
//! - Only raw system calls on constant strings and small buffers: no new
//!   crates, no nix features (the binary stays small).
//! - The environment is changed only here, in phase 0, while envinit is
//!   single-threaded and before anything has read it; the rest of envinit
//!   and the child see one consistent environment.

use std::ffi::{CStr, CString, OsString};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::exit::{self, Failure, errno_text};
use crate::image;
use crate::options::{self, Given};

/// Whether VM mode is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// On when envinit is PID 1 and /proc is not mounted.
    #[default]
    Auto,
    /// On whenever envinit is PID 1 (mounts only what is missing).
    On,
    /// Never.
    Off,
}

/// How the machine ends when everything has exited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Exit {
    /// Power off (the VMM exits).
    #[default]
    PowerOff,
    /// Reboot (a restart-on-exit policy).
    Reboot,
}

/// The VM options (docs/options.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmSettings {
    /// `--vm`.
    pub mode: Mode,
    /// `--vm-exit`.
    pub exit: Exit,
    /// `--image-config`.
    pub image_config: Option<PathBuf>,
    /// `ENVINIT_HOSTNAME`.
    pub hostname: Option<String>,
}

impl VmSettings {
    /// `--vm`, `--vm-exit`, `--image-config`, `ENVINIT_HOSTNAME`.
    pub fn from_options(given: &mut Given) -> Result<VmSettings, Failure> {
        let mut vm = VmSettings::default();
        if let Some(r) = given.take("vm") {
            vm.mode = r.parse_last(parse_mode)?.unwrap_or_default();
        }
        if let Some(r) = given.take("vm-exit") {
            vm.exit = r.parse_last(parse_exit)?.unwrap_or_default();
        }
        if let Some(r) = given.take("image-config") {
            vm.image_config = r.last().map(PathBuf::from);
        }
        if let Some(r) = given.take("hostname") {
            vm.hostname = r.last().map(String::from);
        }
        Ok(vm)
    }
}

/// Parses `auto|on|off` (booleans count too).
pub fn parse_mode(text: &str) -> Result<Mode, String> {
    let word = text.trim();
    let is = |names: &[&str]| names.iter().any(|n| word.eq_ignore_ascii_case(n));
    if is(&["auto"]) {
        Ok(Mode::Auto)
    } else if is(&["on", "1", "true", "yes"]) {
        Ok(Mode::On)
    } else if is(&["off", "0", "false", "no"]) {
        Ok(Mode::Off)
    } else {
        Err(format!("{text:?} is not auto, on or off"))
    }
}

/// Parses `poweroff|reboot`.
pub fn parse_exit(text: &str) -> Result<Exit, String> {
    let word = text.trim();
    if word.eq_ignore_ascii_case("poweroff") || word.eq_ignore_ascii_case("power-off") {
        Ok(Exit::PowerOff)
    } else if word.eq_ignore_ascii_case("reboot") {
        Ok(Exit::Reboot)
    } else {
        Err(format!("{text:?} is not poweroff or reboot"))
    }
}

/// The default image config, used in VM mode when it exists.
pub const DEFAULT_IMAGE_CONFIG: &str = "/etc/envinit/image.json";

/// Docker's default PATH, for a kernel that gave none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One filesystem mounted at boot when not mounted yet.
pub struct MountSpec {
    /// Where.
    pub target: &'static CStr,
    /// The filesystem type (also the source name).
    pub fstype: &'static CStr,
    /// MS_* flags.
    pub flags: libc::c_ulong,
    /// Options.
    pub data: &'static CStr,
}

const NOSUID: libc::c_ulong = libc::MS_NOSUID;
const NODEV: libc::c_ulong = libc::MS_NODEV;
const NOEXEC: libc::c_ulong = libc::MS_NOEXEC;

/// What a container runtime would have mounted, in order (a parent
/// before what is mounted inside it). /dev comes first so that the console
/// is there for any error that follows.
pub const MOUNTS: &[MountSpec] = &[
    MountSpec {
        target: c"/dev",
        fstype: c"devtmpfs",
        flags: NOSUID,
        data: c"mode=0755",
    },
    MountSpec {
        target: c"/proc",
        fstype: c"proc",
        flags: NOSUID | NODEV | NOEXEC,
        data: c"",
    },
    MountSpec {
        target: c"/sys",
        fstype: c"sysfs",
        flags: NOSUID | NODEV | NOEXEC,
        data: c"",
    },
    MountSpec {
        target: c"/dev/pts",
        fstype: c"devpts",
        flags: NOSUID | NOEXEC,
        data: c"newinstance,ptmxmode=0666,mode=0620,gid=5",
    },
    MountSpec {
        target: c"/dev/shm",
        fstype: c"tmpfs",
        flags: NOSUID | NODEV,
        data: c"mode=1777",
    },
    MountSpec {
        target: c"/dev/mqueue",
        fstype: c"mqueue",
        flags: NOSUID | NODEV | NOEXEC,
        data: c"",
    },
    MountSpec {
        target: c"/run",
        fstype: c"tmpfs",
        flags: NOSUID | NODEV,
        data: c"mode=0755",
    },
    MountSpec {
        target: c"/sys/fs/cgroup",
        fstype: c"cgroup2",
        flags: NOSUID | NODEV | NOEXEC,
        data: c"",
    },
];

/// The links a container's /dev has: (link, target).
const LINKS: &[(&CStr, &CStr)] = &[
    (c"/dev/fd", c"/proc/self/fd"),
    (c"/dev/stdin", c"/proc/self/fd/0"),
    (c"/dev/stdout", c"/proc/self/fd/1"),
    (c"/dev/stderr", c"/proc/self/fd/2"),
];

fn getenv(name: &CStr) -> Option<String> {
    // SAFETY: getenv reads the environment, which nothing modifies while
    // envinit is single-threaded; the result is copied out at once.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: a non-null getenv result is a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(value) };
    Some(String::from_utf8_lossy(text.to_bytes()).into_owned()).filter(|v| !v.is_empty())
}

/// Phase 0: is envinit a machine's init? Cheap: `getpid`; when PID 1 a
/// byte scan of the arguments for `--vm` (parsed only when present) and a
/// look at the `ENVINIT_*` variables already collected (`variables`,
/// usually none); for `auto` one `access` of /proc/self.
pub fn detect(args: &[OsString], variables: &[(OsString, OsString)]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        return false;
    }
    let explicit = args
        .iter()
        .any(|word| word.as_bytes().starts_with(b"--vm"))
        .then(|| options::leading_value(args, "vm"))
        .flatten()
        .or_else(|| {
            variables
                .iter()
                .find(|(key, _)| key == "ENVINIT_VM")
                .map(|(_, value)| value.to_string_lossy().into_owned())
        })
        .filter(|value| !value.is_empty());
    match explicit.as_deref().map(parse_mode) {
        Some(Ok(Mode::On)) => true,
        Some(Ok(Mode::Off)) => false,
        // auto (a bad value is reported by the settings phase)
        _ => {
            // SAFETY: access takes a constant NUL-terminated path.
            unsafe { libc::access(c"/proc/self".as_ptr(), libc::F_OK) != 0 }
        }
    }
}

/// Phase 0 in VM mode: mounts, console, links, Ctrl-Alt-Del, loopback,
/// then the image config applied to `args` (the kernel's argument words)
/// and the environment. `Err` is what to print before [`end`] with exit
/// code 71.
pub fn boot(args: Vec<OsString>) -> Result<Booted, Failure> {
    machine().map_err(|message| Failure::new(exit::OS_ERROR, message))?;
    apply_image_config(args).map_err(|message| Failure::new(exit::OS_ERROR, message))
}

/// Mounts, console, links, Ctrl-Alt-Del, loopback.
fn machine() -> Result<(), String> {
    for spec in MOUNTS {
        mount_missing(spec)?;
        if spec.target == c"/dev" {
            console();
        }
    }
    for (link, target) in LINKS {
        // SAFETY: constant NUL-terminated paths.
        unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) };
    }
    ptmx();
    // Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an immediate reboot.
    // SAFETY: reboot with CAD_OFF only changes that kernel setting.
    unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF) };
    if let Err(e) = loopback_up() {
        crate::logging::early_warning(&format!("cannot bring the loopback interface up: {e}"));
    }
    Ok(())
}

/// Is `path` a mount point (another device than its parent, or the root)?
fn is_mount_point(path: &CStr) -> bool {
    let bytes = path.to_bytes();
    let parent_len = bytes.iter().rposition(|b| *b == b'/').unwrap_or(0).max(1);
    let Ok(parent) = CString::new(&bytes[..parent_len]) else {
        return false;
    };
    match (stat(path), stat(&parent)) {
        (Some(a), Some(b)) => a.st_dev != b.st_dev || a.st_ino == b.st_ino,
        _ => false,
    }
}

fn stat(path: &CStr) -> Option<libc::stat> {
    // SAFETY: stat fills the zeroed struct we own from a NUL-terminated path.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::stat(path.as_ptr(), &mut st) == 0).then_some(st)
    }
}

fn mount_missing(spec: &MountSpec) -> Result<(), String> {
    if is_mount_point(spec.target) {
        return Ok(());
    }
    // SAFETY: constant NUL-terminated paths and options.
    let failed = unsafe {
        libc::mkdir(spec.target.as_ptr(), 0o755);
        libc::mount(
            spec.fstype.as_ptr(),
            spec.target.as_ptr(),
            spec.fstype.as_ptr(),
            spec.flags,
            spec.data.as_ptr().cast(),
        ) != 0
    };
    if failed {
        return Err(format!(
            "cannot mount {} on {}: {} (check that the kernel has it and that the mount point can be created)",
            spec.fstype.to_string_lossy(),
            spec.target.to_string_lossy(),
            errno_text()
        ));
    }
    Ok(())
}

/// Fds 0-2 that are missing, or open on a regular file (the empty
/// /dev/console `docker export` leaves), are reopened on /dev/console.
fn console() {
    let mut console: Option<libc::c_int> = None;
    for fd in 0..3 {
        // SAFETY: fstat fills a zeroed struct we own; plain integers.
        let usable = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) != libc::S_IFREG
        };
        if usable {
            continue;
        }
        let source = *console.get_or_insert_with(|| {
            // SAFETY: constant path; the fd is kept for dup2 below.
            unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) }
        });
        if source < 0 {
            return;
        }
        if source != fd {
            // SAFETY: plain integers.
            unsafe { libc::dup2(source, fd) };
        }
    }
    if let Some(source) = console.filter(|fd| *fd > 2) {
        // SAFETY: our own fd, duplicated where it is needed.
        unsafe { libc::close(source) };
    }
}

/// /dev/ptmx as a link to the new devpts instance's ptmx, as in containers.
fn ptmx() {
    // SAFETY: constant paths; lstat fills a zeroed struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::lstat(c"/dev/ptmx".as_ptr(), &mut st) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
        {
            return;
        }
        libc::unlink(c"/dev/ptmx".as_ptr());
        libc::symlink(c"pts/ptmx".as_ptr(), c"/dev/ptmx".as_ptr());
    }
}

/// `struct ifreq` with the flags member of its union (40 bytes on Linux).
#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

fn loopback_up() -> Result<(), &'static str> {
    // SAFETY: a socket we close below; ioctl reads and writes the ifreq we
    // own, of the size the kernel expects.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(errno_text());
        }
        let mut req = IfreqFlags {
            name: [0; 16],
            flags: 0,
            pad: [0; 22],
        };
        req.name[0] = b'l' as libc::c_char;
        req.name[1] = b'o' as libc::c_char;
        let mut result = libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req);
        if result == 0 {
            req.flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req);
        }
        let error = (result != 0).then(errno_text);
        libc::close(sock);
        error.map_or(Ok(()), Err)
    }
}

/// What the image config gave, for the phases after settings.
#[derive(Debug, Default)]
pub struct Booted {
    /// envinit's argument words: the kernel's, or the image's plan.
    pub args: Vec<OsString>,
    /// The image's stop signal.
    pub stop_signal: Option<i32>,
    /// The image's Hostname.
    pub hostname: Option<String>,
    /// Lines to log as warnings once logging is set up.
    pub warnings: Vec<String>,
}

/// Reads the image config (if any) and applies it: the environment (the
/// image's `Env` under the kernel's variables, a default PATH) and the
/// working directory. Returns envinit's argument words. (It runs before the
/// settings are read: the image config decides what they are. So the two
/// variables it needs, `ENVINIT_IMAGE_CONFIG` and whether the kernel gave
/// `ENVINIT_USER`, are looked up in the raw environment.)
fn apply_image_config(args: Vec<OsString>) -> Result<Booted, String> {
    let mut booted = Booted::default();
    let path = options::leading_value(&args, "image-config")
        .or_else(|| getenv(c"ENVINIT_IMAGE_CONFIG"))
        .map(PathBuf::from)
        .or_else(|| {
            let default = Path::new(DEFAULT_IMAGE_CONFIG);
            default.exists().then(|| default.to_path_buf())
        });
    match path {
        None => booted.args = args,
        Some(path) => {
            let config = read_image_config(&path)?;
            let plan = image::plan(&config, &args, getenv_str, is_envinit)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for (key, value) in &plan.env {
                set_env(key, value);
            }
            // User is --user (ENVINIT_USER), unless the kernel gave one.
            if let Some(user) = &plan.user {
                if getenv(c"ENVINIT_USER").is_none() {
                    set_env("ENVINIT_USER", user);
                }
            }
            if let Some(dir) = &plan.working_dir {
                make_dirs(dir);
                std::env::set_current_dir(dir).map_err(|e| {
                    format!("cannot enter WorkingDir {dir}: {}", crate::exit::reason(&e))
                })?;
            }
            booted.hostname = plan.hostname;
            booted.stop_signal = plan.stop_signal;
            booted.args = plan.args;
        }
    }
    if getenv(c"PATH").is_none() {
        set_env("PATH", DEFAULT_PATH);
    }
    Ok(booted)
}

/// Phase 1 in VM mode, once the settings are read and logging is up: the
/// hostname (`ENVINIT_HOSTNAME`, else the image's Hostname, else the first
/// line of /etc/hostname) and the warnings of the boot.
pub fn settle(booted: &Booted, settings: &VmSettings) {
    for warning in &booted.warnings {
        tracing::warn!("{warning}");
    }
    let hostname = settings
        .hostname
        .clone()
        .or_else(|| booted.hostname.clone())
        .or_else(|| {
            std::fs::read("/etc/hostname")
                .ok()
                .and_then(|bytes| {
                    let text = String::from_utf8_lossy(&bytes);
                    text.lines().next().map(|l| l.trim().to_string())
                })
                .filter(|name| !name.is_empty())
        });
    if let Some(name) = hostname {
        // SAFETY: sethostname reads `len` bytes of the string we own.
        if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
            tracing::warn!(
                hostname = name.as_str(),
                error = errno_text(),
                "cannot set the hostname"
            );
        }
    }
}

/// `mkdir -p` (modes 0755); errors show when the directory is entered.
fn make_dirs(dir: &str) {
    let bytes = dir.as_bytes();
    for end in (1..=bytes.len()).filter(|&i| i == bytes.len() || bytes[i] == b'/') {
        if let Ok(path) = CString::new(&bytes[..end]) {
            // SAFETY: a NUL-terminated path we own.
            unsafe { libc::mkdir(path.as_ptr(), 0o755) };
        }
    }
}

fn getenv_str(key: &str) -> Option<String> {
    std::env::var_os(key).map(|v| v.to_string_lossy().into_owned())
}

/// Is the Entrypoint program envinit itself (by name, or this very file)?
fn is_envinit(program: &str) -> bool {
    Path::new(program).file_name() == Some("envinit".as_ref())
        || std::fs::read_link("/proc/self/exe").is_ok_and(|me| me == Path::new(program))
}

/// Reads and parses the image config. Only a regular file is read: it is
/// checked before the open, and the open cannot block (a FIFO would hold
/// the boot forever) or take a terminal as envinit's.
fn read_image_config(path: &Path) -> Result<image::ImageConfig, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| {
        format!(
            "cannot read the image config {}: {}",
            path.display(),
            crate::exit::reason(&e)
        )
    };
    let not_a_file = |kind: std::fs::FileType| {
        format!(
            "{}: the image config is {}, not a regular file: give the file `docker image inspect --format '{{{{json .Config}}}}'` wrote",
            path.display(),
            file_kind(kind)
        )
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    // Replaced between the two looks: check what was opened.
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    let mut bytes = Vec::new();
    file.take(image::MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > image::MAX_SIZE {
        return Err(format!(
            "{}: the image config is larger than 1 MiB",
            path.display()
        ));
    }
    image::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a file that is not a regular file is, for messages.
fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

fn set_env(key: &str, value: &str) {
    // SAFETY: phase 0 of VM mode: envinit is single-threaded and nothing
    // else reads or writes the environment at the same time.
    unsafe { std::env::set_var(key, value) };
}

/// The end of VM mode: the exit code on the console (unless `quiet`, i.e.
/// `ENVINIT_LOG=off`), sync, unmount or remount read-only, then power off
/// or reboot. Never returns; if the kernel refuses, envinit exits (and the
/// kernel panics with the code in its message).
pub fn end(code: u8, exit: Exit, quiet: bool) -> ! {
    if !quiet {
        let line = format!("envinit: exit code={code}\n");
        // SAFETY: writes the bytes of our own string.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    // SAFETY: sync has no arguments.
    unsafe { libc::sync() };
    unmount_all();
    let how = match exit {
        Exit::PowerOff => libc::RB_POWER_OFF,
        Exit::Reboot => libc::RB_AUTOBOOT,
    };
    // SAFETY: sync and reboot take plain integers; only PID 1 gets here.
    unsafe {
        libc::sync();
        libc::reboot(how);
    }
    crate::logging::early_error(&format!("cannot power off: {}", errno_text()));
    std::process::exit(i32::from(code))
}

/// Every mount, innermost first: unmounted, or when busy remounted
/// read-only (the root is always remounted read-only).
fn unmount_all() {
    let Ok(table) = std::fs::read("/proc/self/mounts") else {
        return;
    };
    let points: Vec<CString> = table
        .split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(1))
        .filter_map(|point| CString::new(crate::container::unescape_bytes(point)).ok())
        .collect();
    for point in points.iter().rev() {
        // SAFETY: NUL-terminated paths we own; failures are expected (busy
        // filesystems, the root) and handled by the remount.
        unsafe {
            if point.as_bytes() == b"/" || libc::umount2(point.as_ptr(), 0) != 0 {
                libc::mount(
                    std::ptr::null(),
                    point.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_exits() {
        assert_eq!(parse_mode("auto"), Ok(Mode::Auto));
        assert_eq!(parse_mode(" ON "), Ok(Mode::On));
        assert_eq!(parse_mode("0"), Ok(Mode::Off));
        assert!(parse_mode("maybe").is_err());
        assert_eq!(parse_exit("poweroff"), Ok(Exit::PowerOff));
        assert_eq!(parse_exit("Reboot"), Ok(Exit::Reboot));
        assert!(parse_exit("halt").is_err());
    }

    #[test]
    fn not_pid1_is_never_a_vm() {
        let args: Vec<OsString> = vec!["--vm".into(), "on".into(), "app".into()];
        assert!(!detect(&args, &[("ENVINIT_VM".into(), "on".into())]));
    }

    #[test]
    fn mount_points() {
        assert!(is_mount_point(c"/"));
        assert!(is_mount_point(c"/proc"));
        assert!(!is_mount_point(c"/no/such/dir"));
    }

    #[test]
    fn an_image_config_that_is_not_a_regular_file_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("envinit-vm-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("image.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        // On a thread, so that a read that blocks fails the test instead
        // of hanging it.
        let (done, result) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || done.send(read_image_config(&path)).unwrap());
        let err = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO must not block")
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}: the image config is a FIFO, not a regular file: give the file `docker image inspect --format '{{{{json .Config}}}}'` wrote",
                fifo.display()
            )
        );
        let err = read_image_config(&dir).unwrap_err();
        assert!(err.contains("is a directory, not a regular file"), "{err}");
        let err = read_image_config(&dir.join("missing")).unwrap_err();
        assert!(err.starts_with("cannot read the image config "), "{err}");
        let json = dir.join("ok.json");
        std::fs::write(&json, r#"{"Cmd":["a\u0000"]}"#).unwrap();
        let err = read_image_config(&json).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: line 1 column 11: Cmd: ", json.display())),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
