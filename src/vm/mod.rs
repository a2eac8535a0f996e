//! VM mode: envinit as the init of a microVM booted from a container image
//! (docs/vm.md). The kernel starts envinit directly, or a first stage (an
//! initramfs script: tools/vm-from-image writes one) hands over to it:
//! little or nothing is mounted, the environment and arguments come from
//! the kernel command line, and PID 1 must never exit (the kernel panics).
//!
//! # What it owns
//!
//! - [`detect`]: is this a machine's init? `--vm on|off` / `ENVINIT_VM`,
//!   else `auto`: PID 1 in the initial PID namespace (its inode is a
//!   constant, [`INITIAL_PID_NS`]), or PID 1 with /proc not mounted. In a
//!   container this costs `getpid` and one raw `newfstatat`, nothing more.
//! - [`boot`] (phase 0): what a container runtime mounts, the console,
//!   Ctrl-Alt-Del and the ACPI power button as a stop, loopback
//!   (`machine`); the environment cleaned to the kernel command line's
//!   words (`cmdline`); the image config applied (`config`,
//!   `crate::image`).
//! - [`settle`] (phase 1, once the settings are read): the network from
//!   `ENVINIT_NET` (`net` reads, `netlink` applies), the hostname,
//!   /etc/hosts, /etc/resolv.conf and /etc/hostname (`names`), the volumes
//!   and the secrets disk (`mounts`). The stop-signal rule of VM mode is
//!   the lifecycle's ([`crate::lifecycle::SuperviseSettings::for_vm`]).
//! - [`end`]: one console line with the exit code, sync, unmount (or
//!   remount read-only) everything, then power off or reboot. Never returns.
//!
//! # What it promises
//!
//! - A failure at boot is one line naming what failed and the errno, then
//!   [`end`] with exit code 71 (EX_OSERR; 78 for a configuration that
//!   cannot be read): the machine powers off, it does not panic.
//! - Only raw system calls on constant strings and small buffers: no new
//!   crates, no nix features (the binary stays small). Pure parsers
//!   (`cmdline`, `net`, the `mounts` formats, `names`' files) are
//!   unit-tested over strings. Boot-time code is kept out of line
//!   (`#[inline(never)]`): inlined it saves no time and costs size.
//! - Nothing on the kernel command line carries a secret: secrets come
//!   from the secrets disk only, and the app's environment never gets a
//!   parameter meant for the kernel (`ip=`) or a first stage's leftovers.
//! - The environment is changed only in phases 0 and 1, while envinit is
//!   single-threaded and before anything has read it but the settings; the
//!   rest of envinit and the child see one consistent environment.

mod cmdline;
mod config;
mod machine;
mod mounts;
mod names;
mod net;
mod netlink;

use std::ffi::{CStr, OsString};
use std::path::PathBuf;

use nix::libc;

use crate::exit::{self, Failure, errno_text};
use crate::logging::warn;
use crate::options::{self, Given};

pub use machine::{MOUNTS, MountSpec};

/// Whether VM mode is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// On when envinit is PID 1 of the initial PID namespace, or PID 1
    /// with /proc not mounted.
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
    /// The rest, only when one of them is given: a container's settings
    /// carry no more than this pointer.
    pub machine: Option<Box<MachineSettings>>,
}

/// The image config, hostname, network, volumes and secrets disk a VM is
/// given. The last three are kept as given: they are read in [`settle`],
/// into items that borrow this text (errors are those of their option, 64
/// or 78, as when read with the other settings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineSettings {
    /// `--image-config` (read in phase 0, from the raw arguments and
    /// environment: the image config decides what the settings are).
    pub image_config: Option<PathBuf>,
    /// `ENVINIT_HOSTNAME`.
    pub hostname: Option<String>,
    /// `--net` items.
    pub net: Option<options::Raw>,
    /// `--mount` volumes, in order.
    pub mount: Option<options::Raw>,
    /// `--secrets-disk`.
    pub secrets_disk: Option<options::Raw>,
}

/// The options of [`MachineSettings`].
const MACHINE_OPTIONS: &[&str] = &["image-config", "hostname", "net", "mount", "secrets-disk"];

impl VmSettings {
    /// `--vm`, `--vm-exit`, and [`MachineSettings`]' `--image-config`,
    /// `ENVINIT_HOSTNAME`, `--net`, `--mount`, `--secrets-disk`.
    pub fn from_options(given: &mut Given) -> Result<VmSettings, Failure> {
        let mut vm = VmSettings::default();
        if let Some(r) = given.take("vm") {
            vm.mode = r.parse_last(parse_mode)?.unwrap_or_default();
        }
        if let Some(r) = given.take("vm-exit") {
            vm.exit = r.parse_last(parse_exit)?.unwrap_or_default();
        }
        if given.any(MACHINE_OPTIONS) {
            vm.machine = Some(Box::new(MachineSettings {
                image_config: given
                    .take("image-config")
                    .and_then(|r| r.last().map(PathBuf::from)),
                hostname: given
                    .take("hostname")
                    .and_then(|r| r.last().map(String::from)),
                net: given.take("net"),
                mount: given.take("mount"),
                secrets_disk: given.take("secrets-disk"),
            }));
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

/// The inode of the initial PID namespace (`stat -L /proc/self/ns/pid`),
/// the same on every Linux (PROC_PID_INIT_INO): the namespace a machine's
/// init runs in, and no container's.
pub const INITIAL_PID_NS: u64 = 0xEFFF_FFFC;

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

#[inline(never)]
fn set_env(key: &str, value: &str) {
    // SAFETY: phases 0 and 1 of VM mode: envinit is single-threaded and
    // nothing else reads or writes the environment at the same time.
    unsafe { std::env::set_var(key, value) };
}

/// Phase 0: is envinit a machine's init? Cheap: `getpid`; when PID 1 a
/// byte scan of the arguments for `--vm` (parsed only when present) and a
/// look at the `ENVINIT_*` variables already collected (`variables`,
/// usually none); for `auto` one `stat` of /proc/self/ns/pid (an `access`
/// more only when that fails).
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
        _ => machines_init(),
    }
}

/// PID 1 of the initial PID namespace (where /proc is mounted: a first
/// stage moved its /proc over), or PID 1 where /proc is not mounted (the
/// kernel started envinit directly).
fn machines_init() -> bool {
    use crate::signals::intake::raw;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: newfstatat writes a `struct stat` (the kernel's is the C
    // library's on Linux) into the buffer we own, from a constant path. A
    // raw call: musl's stat copies the whole struct field by field, paid by
    // every container's start.
    let found = unsafe {
        raw::syscall4(
            libc::SYS_newfstatat,
            libc::AT_FDCWD as usize,
            c"/proc/self/ns/pid".as_ptr() as usize,
            st.as_mut_ptr() as usize,
            0,
        )
    };
    match found {
        // SAFETY: the call succeeded, so the kernel filled the struct.
        Ok(_) => unsafe { st.assume_init_ref() }.st_ino == INITIAL_PID_NS,
        // /proc is not mounted: the kernel started envinit directly.
        Err(nix::errno::Errno::ENOENT) => {
            // SAFETY: access takes a constant path.
            unsafe { libc::access(c"/proc/self".as_ptr(), libc::F_OK) != 0 }
        }
        Err(_) => false,
    }
}

/// Phase 0 in VM mode: mounts, console, links, Ctrl-Alt-Del and the power
/// button, loopback; the environment cleaned to the kernel command line's
/// words; then the image config applied to `args` (the kernel's argument
/// words) and the environment. `Err` is what to print before [`end`]
/// with exit code 71.
pub fn boot(args: Vec<OsString>) -> Result<Booted, Failure> {
    let os = |message: String| Failure::new(exit::OS_ERROR, message);
    machine::prepare().map_err(os)?;
    let text = std::fs::read("/proc/cmdline").unwrap_or_default();
    let cmdline = cmdline::Cmdline(String::from_utf8_lossy(&text).into_owned());
    clean_environment(&cmdline);
    let mut booted = config::apply_image_config(args).map_err(os)?;
    // A kernel with CONFIG_IP_PNP has /proc/net/pnp.
    booted.ip_ignored = cmdline.value("ip").is_some()
        // SAFETY: access takes a constant path.
        && unsafe { libc::access(c"/proc/net/pnp".as_ptr(), libc::F_OK) } != 0;
    Ok(booted)
}

/// The environment as the kernel command line gives it (`cmdline`'s rule):
/// a first stage's variables and the kernel's own parameters out.
#[inline(never)]
fn clean_environment(cmdline: &cmdline::Cmdline) {
    let mut changes = Vec::new();
    for (key, value) in std::env::vars_os() {
        // A name or value that is not UTF-8 is on no command line.
        let (k, v) = (key.to_str().unwrap_or("\0"), value.to_str().unwrap_or("\0"));
        if let Some(change) = cmdline::change(cmdline, k, v) {
            changes.push((key, change));
        }
    }
    for (key, change) in changes {
        match change {
            // SAFETY: as for `set_env`.
            Some(value) => unsafe { std::env::set_var(key, value) },
            // SAFETY: as for `set_env`.
            None => unsafe { std::env::remove_var(key) },
        }
    }
}

/// What the boot found, for the phases after settings.
#[derive(Debug, Default)]
pub struct Booted {
    /// envinit's argument words: the kernel's, or the image's plan.
    pub args: Vec<OsString>,
    /// The image's stop signal.
    pub stop_signal: Option<i32>,
    /// The image's Hostname.
    pub hostname: Option<String>,
    /// `ip=` is on the command line of a kernel that does not read it.
    pub ip_ignored: bool,
    /// Lines to log as warnings once logging is set up.
    pub warnings: Vec<String>,
}

/// Phase 1 in VM mode, once the settings are read and logging is up: the
/// network, the hostname, /etc/hosts, /etc/resolv.conf and /etc/hostname,
/// the volumes, the secrets disk and its variables.
pub fn settle(booted: &Booted, settings: &VmSettings) -> Result<(), Failure> {
    for warning in &booted.warnings {
        warn(warning);
    }
    // Everything is read before anything is done.
    let none = MachineSettings::default();
    let machine = settings.machine.as_deref().unwrap_or(&none);
    let items = read_each(&machine.net, net::parse_net)?;
    let joined = machine.mount.as_ref().map(|raw| match raw.source {
        options::Source::Variable => mounts::join_options(&raw.values),
        options::Source::CommandLine => raw.values.clone(),
    });
    let mut volumes = Vec::new();
    for text in joined.iter().flatten() {
        let raw = machine.mount.as_ref();
        volumes.push(mounts::parse_volume(text).map_err(|e| option_error(raw, e))?);
    }
    let disk = read_each(&machine.secrets_disk, mounts::parse_disk)?;

    if booted.ip_ignored && machine.net.is_none() {
        warn(
            "ip= is the kernel's, and this kernel has no CONFIG_IP_PNP: envinit configures the network from ENVINIT_NET (e.g. ENVINIT_NET=eth0:10.0.2.15/24,eth0:gw=10.0.2.2,dns=10.0.2.3)",
        );
    }
    let network = netlink::configure(&items)?;
    let hostname = hostname(machine, booted);
    // SAFETY: sethostname reads `len` bytes of the string we own.
    if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
        warn(&format!(
            "cannot set the hostname {hostname}: {}",
            errno_text()
        ));
    }
    let files = [
        ("hostname", Some(format!("{hostname}\n"))),
        ("hosts", Some(names::hosts(&hostname, network.address))),
        (
            "resolv.conf",
            names::resolv_conf(&network.dns, &network.search),
        ),
    ];
    for (name, content) in files {
        if let Some(content) = content.filter(|_| names::is_unset(name)) {
            if let Err(problem) = names::provide(name, &content) {
                warn(&problem);
            }
        }
    }
    let os = |message: String| Failure::new(exit::OS_ERROR, message);
    for volume in &volumes {
        mounts::mount(volume, "ENVINIT_MOUNT").map_err(os)?;
    }
    if let Some(disk) = disk.last() {
        let text = mounts::open_secrets(disk).map_err(os)?;
        let text = String::from_utf8_lossy(&text);
        let vars = mounts::parse_env_file(&text).map_err(|e| {
            os(format!(
                "ENVINIT_SECRETS_DISK: {}/.env: {e}",
                mounts::SECRETS_DIR
            ))
        })?;
        for (key, value) in vars {
            match key.starts_with("ENVINIT_") {
                true => warn(&format!(
                    "{key} in the secrets disk's .env is ignored: options come from the kernel command line or the image"
                )),
                false => set_env(key, value),
            }
        }
    }
    Ok(())
}

/// Every value of an option read by `parse` (borrowing the value).
#[inline(never)]
fn read_each<'a, T>(
    raw: &'a Option<options::Raw>,
    parse: fn(&'a str) -> Result<T, String>,
) -> Result<Vec<T>, Failure> {
    let mut parsed = Vec::new();
    for value in raw.iter().flat_map(|r| &r.values) {
        parsed.push(parse(value).map_err(|e| option_error(raw.as_ref(), e))?);
    }
    Ok(parsed)
}

/// The error of a value of `raw`'s option (64 on the command line, 78 as
/// a variable).
fn option_error(raw: Option<&options::Raw>, problem: String) -> Failure {
    match raw {
        Some(raw) => raw.error(problem),
        None => Failure::new(exit::CONFIG, problem),
    }
}

/// `ENVINIT_HOSTNAME`, else the image's Hostname, else the
/// first line of /etc/hostname, else `vm-` and the MAC address of eth0
/// (12 hex digits, as Docker's container ids), else `localhost`.
#[inline(never)]
fn hostname(machine: &MachineSettings, booted: &Booted) -> String {
    machine
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
        })
        .or_else(netlink::mac_hostname)
        .unwrap_or_else(|| "localhost".to_string())
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
    machine::unmount_all();
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
}
