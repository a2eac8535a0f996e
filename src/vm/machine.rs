//! The machine a container runtime would have prepared: the filesystems
//! ([`MOUNTS`]), the console on fds 0-2, the /dev links, Ctrl-Alt-Del and
//! the ACPI power button as a stop, the loopback interface; and at the end,
//! everything unmounted or left read-only.
//!
//! Only raw system calls on constant strings and small buffers. Each
//! filesystem is mounted only where it is not mounted yet (a first stage
//! may have moved /proc over), its mount point created when missing.

use std::ffi::{CStr, CString};

use nix::libc;

use crate::exit::errno_text;

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

/// Mounts what is missing, the console, the links, Ctrl-Alt-Del and the
/// power button as SIGINT, loopback up. `Err` is the one line to print.
#[inline(never)]
pub(super) fn prepare() -> Result<(), String> {
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
    power_button_as_ctrl_alt_del();
    if let Err(e) = loopback_up() {
        crate::logging::early_warning(&format!("cannot bring the loopback interface up: {e}"));
    }
    Ok(())
}

/// The ACPI power button (what cloud-hypervisor, libvirt and QEMU's
/// `system_powerdown` press) made a Ctrl-Alt-Del: with the `button` driver
/// loaded it is the key KEY_POWER of an input device, which the kernel's
/// console keyboard reads through the keymap. Mapping that key to the
/// keymap's Boot action makes the kernel do what it does for Ctrl-Alt-Del
/// (with CAD off: SIGINT to PID 1), so the button needs no fd, no poll and
/// no new stop cause. Without a virtual terminal (a kernel without
/// CONFIG_VT) there is no /dev/tty0 and nothing to map: the button stays
/// ignored, as it was.
#[inline(never)]
fn power_button_as_ctrl_alt_del() {
    /// `struct kbentry` of <linux/kd.h>.
    #[repr(C)]
    struct KbEntry {
        table: u8,
        index: u8,
        value: u16,
    }
    const KDSKBENT: libc::c_ulong = 0x4B47;
    const KEY_POWER: u8 = 116;
    /// `K(KT_SPEC, 12)`: the Boot action, Ctrl-Alt-Del's.
    const K_BOOT: u16 = 0x020c;
    let entry = KbEntry {
        table: 0,
        index: KEY_POWER,
        value: K_BOOT,
    };
    // SAFETY: a constant path; ioctl reads the 4-byte kbentry we own; the
    // fd is closed at once.
    unsafe {
        let fd = libc::open(
            c"/dev/tty0".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        );
        if fd >= 0 {
            libc::ioctl(fd, KDSKBENT as _, &entry);
            libc::close(fd);
        }
    }
}

/// `mkdir -p` (modes 0755); errors show when the directory is used.
#[inline(never)]
pub(super) fn make_dirs(dir: &str) {
    let bytes = dir.as_bytes();
    for end in (1..=bytes.len()).filter(|&i| i == bytes.len() || bytes[i] == b'/') {
        if let Ok(path) = CString::new(&bytes[..end]) {
            // SAFETY: a NUL-terminated path we own.
            unsafe { libc::mkdir(path.as_ptr(), 0o755) };
        }
    }
}

/// Is `path` a mount point (another device than its parent, or the root)?
#[inline(never)]
pub(super) fn is_mount_point(path: &CStr) -> bool {
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

#[inline(never)]
fn stat(path: &CStr) -> Option<libc::stat> {
    // SAFETY: stat fills the zeroed struct we own from a NUL-terminated path.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::stat(path.as_ptr(), &mut st) == 0).then_some(st)
    }
}

#[inline(never)]
pub(super) fn mount_missing(spec: &MountSpec) -> Result<(), String> {
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
#[inline(never)]
pub(super) fn console() {
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
#[inline(never)]
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

#[inline(never)]
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

/// Every mount, innermost first: unmounted, or when busy remounted
/// read-only (the root is always remounted read-only).
#[inline(never)]
pub(super) fn unmount_all() {
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
    fn mount_points() {
        assert!(is_mount_point(c"/"));
        assert!(is_mount_point(c"/proc"));
        assert!(!is_mount_point(c"/no/such/dir"));
    }
}
