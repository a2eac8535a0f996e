//! Volumes and the secrets disk: what Docker's `-v` and `--secret` give a
//! container, for a VM, without a word of it on the kernel command line
//! that a secret could leak through.
//!
//! # What it owns
//!
//! - `ENVINIT_MOUNT=SOURCE:TARGET[:TYPE[:OPTIONS]]` ([`parse_volume`]):
//!   a disk (or any source the filesystem type takes) mounted at TARGET,
//!   created if missing. TYPE defaults to ext4; OPTIONS are fstab's
//!   (`ro`, `noatime`, `nosuid`... become mount flags, the rest goes to the
//!   filesystem).
//! - `ENVINIT_SECRETS_DISK=DEVICE[:TYPE]` ([`parse_disk`],
//!   [`open_secrets`]): a disk the VM builder wrote, mounted read-only,
//!   nosuid, nodev, noexec at /run/secrets, where `{{ secrets.NAME }}` and
//!   `X_FILE` read. Its root directory must be root's and closed to others
//!   (mode 0700): the app reads its secrets through the config envinit
//!   renders, not from the disk. A file `.env` on it (`KEY=VALUE` lines,
//!   as `docker run --env-file`) adds to the environment and wins over the
//!   image's `Env` and the kernel's words.
//!
//! # What it promises
//!
//! - Parse errors say what and how to fix; they never quote a line of
//!   `.env` (only its number and key): values are secrets.
//! - A mount that fails is one line naming source, target, type and the
//!   errno, with what to check.

use std::ffi::CString;

use nix::libc;

use crate::exit::errno_text;

/// Where the secrets disk is mounted.
pub const SECRETS_DIR: &str = "/run/secrets";

/// The environment file on the secrets disk.
pub const ENV_FILE: &str = ".env";

/// The largest `.env` read.
const MAX_ENV_FILE: u64 = 1 << 20;

/// A filesystem to mount (borrowing the text it was read from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume<'a> {
    /// The device or source.
    pub source: &'a str,
    /// The absolute mount point.
    pub target: &'a str,
    /// The filesystem type.
    pub fstype: &'a str,
    /// `MS_*` flags from the options.
    pub flags: libc::c_ulong,
    /// The options that are not flags.
    pub data: String,
}

/// fstab option words that are mount flags; `defaults` and `rw` are the
/// default and need none.
const FLAGS: &[(&str, libc::c_ulong)] = &[
    ("ro", libc::MS_RDONLY),
    ("nosuid", libc::MS_NOSUID),
    ("nodev", libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC),
    ("noatime", libc::MS_NOATIME),
    ("nodiratime", libc::MS_NODIRATIME),
    ("relatime", libc::MS_RELATIME),
    ("sync", libc::MS_SYNCHRONOUS),
    ("lazytime", libc::MS_LAZYTIME),
    ("defaults", 0),
    ("rw", 0),
];

const VOLUME_FORM: &str = "SOURCE:TARGET[:TYPE[:OPTIONS]], e.g. /dev/vdb:/var/lib/app";

/// Parses `SOURCE:TARGET[:TYPE[:OPTIONS]]`.
#[inline(never)]
pub fn parse_volume(text: &str) -> Result<Volume<'_>, String> {
    let mut parts = text.trim().splitn(4, ':');
    let source = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let fstype = parts.next().filter(|t| !t.is_empty()).unwrap_or("ext4");
    let options = parts.next().unwrap_or_default();
    if source.is_empty() || target.is_empty() {
        return Err(format!("{text:?} is not {VOLUME_FORM}"));
    }
    check_target(target)?;
    let (flags, data) = mount_options(options);
    Ok(Volume {
        source,
        target,
        fstype,
        flags,
        data,
    })
}

#[inline(never)]
fn check_target(target: &str) -> Result<(), String> {
    if !target.starts_with('/') || target == "/" || target.split('/').any(|c| c == "..") {
        return Err(format!(
            "{target:?}: the mount point must be an absolute path other than / and without \"..\""
        ));
    }
    Ok(())
}

/// fstab options split into mount flags and the filesystem's own.
#[inline(never)]
fn mount_options(text: &str) -> (libc::c_ulong, String) {
    let mut flags = 0;
    let mut data: Vec<&str> = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match FLAGS.iter().find(|(name, _)| *name == word) {
            Some((_, flag)) => flags |= flag,
            None => data.push(word),
        }
    }
    (flags, data.join(","))
}

/// The items of `ENVINIT_MOUNT` as the variable's comma list gives them:
/// an item without a `:` is more OPTIONS of the item before it (so
/// `/dev/vdb:/data:ext4:noatime,nodev` stays one volume).
#[inline(never)]
pub fn join_options(items: &[String]) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    for item in items {
        match joined.last_mut() {
            Some(last) if !item.contains(':') => {
                last.push(',');
                last.push_str(item);
            }
            _ => joined.push(item.clone()),
        }
    }
    joined
}

/// Parses `ENVINIT_SECRETS_DISK`: `DEVICE[:TYPE]`.
#[inline(never)]
pub fn parse_disk(text: &str) -> Result<Volume<'_>, String> {
    let (device, fstype) = text.trim().split_once(':').unwrap_or((text.trim(), "ext4"));
    if !device.starts_with("/dev/") || fstype.is_empty() {
        return Err(format!(
            "{text:?} is not DEVICE[:TYPE], e.g. /dev/vdb (a disk the VMM attaches)"
        ));
    }
    Ok(Volume {
        source: device,
        target: SECRETS_DIR,
        fstype,
        flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: String::new(),
    })
}

/// Mounts `volume`, creating its mount point.
#[inline(never)]
pub fn mount(volume: &Volume, what: &str) -> Result<(), String> {
    super::machine::make_dirs(volume.target);
    let c = |s: &str| CString::new(s).map_err(|_| format!("{what}: a NUL byte in {s:?}"));
    let (source, target, fstype, data) = (
        c(volume.source)?,
        c(volume.target)?,
        c(volume.fstype)?,
        c(&volume.data)?,
    );
    // SAFETY: NUL-terminated strings we own.
    let failed = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            volume.flags,
            data.as_ptr().cast(),
        ) != 0
    };
    if failed {
        return Err(format!(
            "{what}: cannot mount {} ({}) on {}: {} (check that the VMM attaches the disk, that its driver is loaded and that it holds a filesystem of type {})",
            volume.source,
            volume.fstype,
            volume.target,
            errno_text(),
            volume.fstype
        ));
    }
    Ok(())
}

/// Mounts the secrets disk at [`SECRETS_DIR`], checks that it is closed to
/// all but root, and returns its `.env` (empty without one).
#[inline(never)]
pub fn open_secrets(disk: &Volume) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    mount(disk, "ENVINIT_SECRETS_DISK")?;
    let open = std::fs::metadata(SECRETS_DIR)
        .map_or(true, |root| root.uid() != 0 || root.mode() & 0o077 != 0);
    if open {
        // SAFETY: a NUL-terminated constant path.
        unsafe { libc::umount2(c"/run/secrets".as_ptr(), libc::MNT_DETACH) };
        return Err(format!(
            "ENVINIT_SECRETS_DISK: the root directory of {} must be root's, mode 0700 (mkfs.ext4 -d DIR -E root_owner=0:0, DIR mode 0700)",
            disk.source
        ));
    }
    let path = format!("{SECRETS_DIR}/{ENV_FILE}");
    match std::fs::symlink_metadata(&path) {
        Err(_) => Ok(Vec::new()),
        Ok(meta) if meta.is_file() && meta.len() <= MAX_ENV_FILE => std::fs::read(&path)
            .map_err(|e| format!("ENVINIT_SECRETS_DISK: {path}: {}", crate::exit::reason(&e))),
        Ok(_) => Err(format!(
            "ENVINIT_SECRETS_DISK: {path} must be a regular file of at most 1 MiB"
        )),
    }
}

/// Reads `KEY=VALUE` lines (blank lines and `#` comments skipped, values
/// taken as written). An error names the line and never its value.
#[inline(never)]
pub fn parse_env_file(text: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(format!(
                "line {n}: not KEY=VALUE (write the value after '='; a line without one is not read from anywhere else)"
            ));
        };
        if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '\0') {
            return Err(format!(
                "line {n}: the name before '=' must be non-empty, without spaces"
            ));
        }
        if value.contains('\0') {
            return Err(format!("line {n}: {key}: a NUL byte in the value"));
        }
        vars.push((key, value));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("/dev/vdb:/var/lib/app"),
            Ok(Volume {
                source: "/dev/vdb",
                target: "/var/lib/app",
                fstype: "ext4",
                flags: 0,
                data: String::new(),
            })
        );
        let v = parse_volume("/dev/vdc:/srv:xfs:defaults,ro,noatime,nouuid,nosuid").unwrap();
        assert_eq!(v.fstype, "xfs");
        assert_eq!(
            v.flags,
            libc::MS_RDONLY | libc::MS_NOATIME | libc::MS_NOSUID
        );
        assert_eq!(v.data, "nouuid");
        let v = parse_volume("tmpfs:/scratch:tmpfs:size=64m,mode=1777").unwrap();
        assert_eq!((v.source, v.data.as_str()), ("tmpfs", "size=64m,mode=1777"));
        assert_eq!(parse_volume("/dev/vdb:/d::ro").unwrap().fstype, "ext4");
        for (bad, says) in [
            ("/dev/vdb", "is not SOURCE:TARGET"),
            (":/data", "is not SOURCE:TARGET"),
            ("/dev/vdb:data", "an absolute path"),
            ("/dev/vdb:/", "other than /"),
            ("/dev/vdb:/a/../etc", "without \"..\""),
        ] {
            let err = parse_volume(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_comma_list_keeps_each_volumes_options() {
        let items: Vec<String> = ["/dev/vdb:/a:ext4:noatime", "nodev", "/dev/vdc:/b", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            join_options(&items),
            ["/dev/vdb:/a:ext4:noatime,nodev", "/dev/vdc:/b,x"]
        );
    }

    #[test]
    fn the_secrets_disk() {
        let disk = parse_disk("/dev/vdb").unwrap();
        assert_eq!((disk.target, disk.fstype), ("/run/secrets", "ext4"));
        assert_eq!(
            disk.flags,
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
        );
        assert_eq!(parse_disk("/dev/vdc:vfat").unwrap().fstype, "vfat");
        assert!(parse_disk("secrets.img").is_err());
        assert!(parse_disk("/dev/vdb:").is_err());
    }

    #[test]
    fn env_files_name_the_line_never_the_value() {
        let vars =
            parse_env_file("# the app's\nDB_PASSWORD=s3cr=t\n\n  API_TOKEN= spaced \r\nEMPTY=\n")
                .unwrap();
        assert_eq!(
            vars,
            vec![
                ("DB_PASSWORD", "s3cr=t"),
                ("API_TOKEN", " spaced "),
                ("EMPTY", ""),
            ]
        );
        let err = parse_env_file("A=1\nhunter2\n").unwrap_err();
        assert!(err.starts_with("line 2: not KEY=VALUE"), "{err}");
        assert!(!err.contains("hunter2"));
        let err = parse_env_file("BAD KEY=hunter2").unwrap_err();
        assert!(err.starts_with("line 1: the name"), "{err}");
        assert!(!err.contains("hunter2"));
    }
}
