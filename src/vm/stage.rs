//! The first stage, done by envinit itself: kernel modules, and the root
//! disk when envinit is the init of an initramfs.
//!
//! # What it owns
//!
//! - [`load_modules`]: the modules listed in [`MODULES_LIST`] (one `.ko`
//!   path per line, in load order), each with `finit_module`. A stock kernel has virtio, the network driver and the
//!   ACPI button as modules; `tools/vm-from-image` writes the list and the
//!   files into the initramfs it builds. A module already there (built in,
//!   or loaded) is fine.
//! - [`root_from`]: the root disk the kernel command line names (`root=`,
//!   `rootfstype=`, `ro`/`rw`), read as the kernel would.
//! - [`switch_root`]: when envinit runs from an initramfs and `root=` names
//!   a disk: mount it, remove the loaded modules' files (their memory is
//!   freed), make the disk the root, and carry on there as the same
//!   process: no second binary, no exec, nothing of the image changed.
//!
//! # What it promises
//!
//! - Every failure is one line naming the module or disk, the errno and
//!   what to check; the boot then ends with exit code 71 and a power-off.
//! - Nothing of this runs unless the file exists or `root=` is given on an
//!   initramfs.

use std::ffi::CString;

use nix::libc;

use crate::exit::errno_text;

/// The list of modules to load, in the root envinit starts in.
pub const MODULES_LIST: &str = "/etc/envinit/modules";

/// Where the root disk is mounted before it becomes the root.
const NEW_ROOT: &str = "/newroot";

/// Reads [`MODULES_LIST`]'s text: a path per line; blank lines and `#`
/// comments skipped.
#[inline(never)]
pub fn parse_modules(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Loads the modules [`MODULES_LIST`] names, if it exists; returns its
/// text (the list, for [`switch_root`]).
#[inline(never)]
pub fn load_modules() -> Result<String, String> {
    let text = std::fs::read(MODULES_LIST).unwrap_or_default();
    let text = String::from_utf8_lossy(&text).into_owned();
    for module in parse_modules(&text) {
        load(module)?;
    }
    Ok(text)
}

#[inline(never)]
fn load(module: &str) -> Result<(), String> {
    let path = CString::new(module).unwrap_or_default();
    // SAFETY: a NUL-terminated path we own; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: finit_module reads the module from our fd and the empty
    // NUL-terminated parameters.
    let loaded =
        fd >= 0 && unsafe { libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0) } == 0;
    let errno = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: our own fd (or -1, which close refuses).
    unsafe { libc::close(fd) };
    if loaded || errno == Some(libc::EEXIST) {
        return Ok(());
    }
    Err(format!(
        "cannot load the kernel module {module} ({MODULES_LIST}): {} (list only files the initramfs holds, from the booting kernel's package, each after those it needs)",
        errno_text()
    ))
}

/// The root disk the kernel command line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The device (`/dev/vda`).
    pub device: String,
    /// The filesystem type (`rootfstype=`, default ext4).
    pub fstype: String,
    /// `MS_RDONLY` unless `rw` (the kernel's default is `ro`).
    pub flags: libc::c_ulong,
}

/// The root disk of `root=`, `rootfstype=`, `ro`/`rw` (`cmdline`), if
/// `root=` is given. Only device paths are understood.
#[inline(never)]
pub fn root_from(cmdline: &super::cmdline::Cmdline) -> Option<Result<Root, String>> {
    let device = cmdline.value("root")?;
    if !device.starts_with("/dev/") {
        return Some(Err(format!(
            "root={device}: envinit finds the root disk by its device path only: write root=/dev/vda (the first virtio disk)"
        )));
    }
    // The last of `ro` and `rw` counts; the kernel's default is `ro`.
    let read_only = cmdline.last_flag(&["ro", "rw"]) != Some("rw");
    Some(Ok(Root {
        device: device.to_string(),
        fstype: cmdline.value("rootfstype").unwrap_or("ext4").to_string(),
        flags: if read_only { libc::MS_RDONLY } else { 0 },
    }))
}

/// Whether `/` is the initramfs (ramfs or tmpfs).
#[inline(never)]
pub fn on_initramfs() -> bool {
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    // SAFETY: statfs fills the zeroed struct we own from a constant path.
    let kind = unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        if libc::statfs(c"/".as_ptr(), &mut fs) != 0 {
            return false;
        }
        fs.f_type as libc::c_long
    };
    kind == RAMFS_MAGIC || kind == TMPFS_MAGIC
}

/// Mounts `root` and makes it `/`. /dev and /proc of the initramfs are
/// let go (they are mounted again in the new root), the `modules` files
/// and their list removed: their memory is freed (the rest of the
/// initramfs is envinit itself, which stays in memory while it runs).
#[inline(never)]
pub fn switch_root(root: &Root, modules: &str) -> Result<(), String> {
    let device = CString::new(root.device.as_str()).unwrap_or_default();
    let fstype = CString::new(root.fstype.as_str()).unwrap_or_default();
    let target = c"/newroot";
    // SAFETY: NUL-terminated strings we own or constants.
    let mounted = unsafe {
        libc::mkdir(target.as_ptr(), 0o700);
        libc::mount(
            device.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            root.flags,
            std::ptr::null(),
        ) == 0
    };
    if !mounted {
        return Err(format!(
            "cannot mount the root disk {} ({}) on {NEW_ROOT}: {} (check root=, rootfstype=, and that the VMM attaches the disk and {MODULES_LIST} loads its driver)",
            root.device,
            root.fstype,
            errno_text()
        ));
    }
    // SAFETY: constant paths; a lazy unmount of the initramfs' own mounts.
    unsafe {
        libc::umount2(c"/proc".as_ptr(), libc::MNT_DETACH);
        libc::umount2(c"/dev".as_ptr(), libc::MNT_DETACH);
    }
    for module in parse_modules(modules) {
        let _ = std::fs::remove_file(module);
    }
    let _ = std::fs::remove_file(MODULES_LIST);
    // SAFETY: constant paths: enter the new root, move it over /, make it
    // this process's root (busybox's and klibc's switch_root do the same).
    let switched = unsafe {
        libc::chdir(target.as_ptr()) == 0
            && libc::mount(
                c".".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_MOVE,
                std::ptr::null(),
            ) == 0
            && libc::chroot(c".".as_ptr()) == 0
            && libc::chdir(c"/".as_ptr()) == 0
    };
    if !switched {
        return Err(format!(
            "cannot make {} the root: {}",
            root.device,
            errno_text()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::cmdline::Cmdline;
    use super::*;

    #[test]
    fn the_modules_list() {
        let list = parse_modules(
            "# virtio first\n/lib/modules/virtio.ko\n\n  /lib/modules/virtio_net.ko \n",
        );
        assert_eq!(
            list,
            ["/lib/modules/virtio.ko", "/lib/modules/virtio_net.ko"]
        );
    }

    #[test]
    fn the_root_disk_as_the_kernel_reads_it() {
        assert_eq!(root_from(&Cmdline::parse("console=ttyS0")), None);
        let root = root_from(&Cmdline::parse("root=/dev/vda rw"))
            .unwrap()
            .unwrap();
        assert_eq!(
            root,
            Root {
                device: "/dev/vda".into(),
                fstype: "ext4".into(),
                flags: 0,
            }
        );
        let root = root_from(&Cmdline::parse("root=/dev/vdb1 rootfstype=xfs"))
            .unwrap()
            .unwrap();
        assert_eq!(root.flags, libc::MS_RDONLY, "ro is the kernel's default");
        assert_eq!(root.fstype, "xfs");
        let err = root_from(&Cmdline::parse("root=UUID=1234"))
            .unwrap()
            .unwrap_err();
        assert!(err.contains("write root=/dev/vda"), "{err}");
    }
}
