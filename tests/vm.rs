//! VM mode under a real kernel: envinit as the init of a QEMU machine
//! (docs/vm.md). Each test builds its own initramfs (a cpio newc writer
//! below, busybox-static for the apps), boots Debian's cloud kernel under
//! TCG with the console on a serial log file, and reads what happened from
//! that log and QEMU's exit status.
//!
//! The kernel is fetched once (`apt-get download` of the package
//! `linux-image-cloud-amd64` points at, unpacked with `dpkg-deb -x`, never
//! installed) into `target/vm-cache` and reused by later runs. At most two
//! machines run at once (two cores); every QEMU has a hard deadline after
//! which it is killed and the test fails with the console so far.
//!
//! Prerequisites: qemu-system-x86_64, busybox (static), apt-get/dpkg-deb
//! (for the kernel), mkfs.ext4 (the `init=` path). Missing ones skip, and
//! fail under CI=true.

mod common;
mod engines;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Mode, Running, Spec, TempDir, envinit, prerequisite, which};

/// The longest one machine may run before it is killed.
const VM_TIMEOUT: Duration = Duration::from_secs(90);

/// The modules a virtio disk needs, in load order (no modules.dep ships).
const VIRTIO_MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
];

/// More modules cached beside them for tools/vm-from-image (which finds
/// the order itself from their .modinfo): virtio over MMIO, the network,
/// the ACPI power button.
const MORE_MODULES: &[&str] = &[
    "drivers/virtio/virtio_mmio.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/acpi/button.ko",
];

/// busybox applets linked in every guest's /bin.
const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "sleep",
    "ls",
    "grep",
    "tr",
    "cut",
    "tty",
    "mount",
    "umount",
    "hostname",
    "pwd",
    "id",
    "readlink",
    "insmod",
    "switch_root",
    "mkdir",
    "true",
    "env",
];

// ---------------------------------------------------------------------------
// The kit: qemu, busybox and a kernel

struct Kit {
    qemu: PathBuf,
    busybox: PathBuf,
    kernel: PathBuf,
    /// The virtio modules, in [`VIRTIO_MODULES`] order.
    modules: Vec<PathBuf>,
    /// The directory of every cached module and modules.builtin (a
    /// `--modules` for tools/vm-from-image).
    module_dir: PathBuf,
}

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/vm-cache")
}

/// How long a tool may take (`apt-get download` of the kernel, `mkfs`).
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `command` to its end (bounded): its stdout, or why it failed.
fn run(command: &mut Command) -> Result<String, String> {
    let out = common::try_run_for(command, TOOL_TIMEOUT)?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            out.status,
            out.err().trim()
        ));
    }
    Ok(out.out())
}

/// The kernel and its virtio modules, fetched once into the cache.
fn fetch_kernel() -> Result<(PathBuf, Vec<PathBuf>), String> {
    let cache = cache_dir();
    let kernel = cache.join("vmlinuz");
    let module_file = |m: &&str| {
        cache
            .join("modules")
            .join(Path::new(m).file_name().unwrap())
    };
    let modules: Vec<PathBuf> = VIRTIO_MODULES.iter().map(module_file).collect();
    let complete = MORE_MODULES.iter().map(module_file).all(|m| m.exists())
        && cache.join("modules/modules.builtin").exists();
    if kernel.exists() && modules.iter().all(|m| m.exists()) && complete {
        return Ok((kernel, modules));
    }
    let work = cache.join(format!("fetch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let depends = run(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let package = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .ok_or("apt-cache depends linux-image-cloud-amd64 names no package")?
        .to_string();
    run(Command::new("apt-get")
        .args(["download", "-q", &package])
        .current_dir(&work))?;
    let deb = fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let tree = work.join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    let boot = fs::read_dir(tree.join("boot"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .ok_or("the package has no boot/vmlinuz-*")?;
    let version = boot.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    let staged = work.join("staged");
    fs::create_dir_all(staged.join("modules")).map_err(|e| e.to_string())?;
    let version_dir = tree.join("lib/modules").join(&version);
    fs::copy(
        version_dir.join("modules.builtin"),
        staged.join("modules/modules.builtin"),
    )
    .map_err(|e| format!("modules.builtin: {e}"))?;
    for module in VIRTIO_MODULES.iter().chain(MORE_MODULES) {
        let from = version_dir.join("kernel").join(module);
        let to = staged
            .join("modules")
            .join(Path::new(module).file_name().unwrap());
        fs::copy(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    fs::copy(&boot, staged.join("vmlinuz")).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(cache.join("modules"));
    let _ = fs::remove_file(&kernel);
    fs::rename(staged.join("modules"), cache.join("modules")).map_err(|e| e.to_string())?;
    fs::rename(staged.join("vmlinuz"), &kernel).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&work);
    Ok((kernel, modules))
}

fn kit() -> Option<&'static Kit> {
    static KIT: OnceLock<Result<Kit, String>> = OnceLock::new();
    let found = KIT.get_or_init(|| {
        let qemu = which("qemu-system-x86_64")
            .ok_or("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")?;
        let busybox = which("busybox").ok_or("busybox is not installed (busybox-static)")?;
        let (kernel, modules) = fetch_kernel()?;
        Ok(Kit {
            qemu,
            busybox,
            kernel,
            modules,
            module_dir: cache_dir().join("modules"),
        })
    });
    match found {
        Ok(kit) => Some(kit),
        Err(problem) => {
            prerequisite("the VM test kit", Some(problem.clone()));
            None
        }
    }
}

// ---------------------------------------------------------------------------
// cpio newc: the initramfs format

#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.out
    }
}

/// A guest filesystem, built in memory, written as a cpio or a directory.
#[derive(Default)]
struct Tree(Vec<(String, Node)>);

enum Node {
    Dir,
    File(Vec<u8>, u32),
    Link(String),
    Fifo,
}

impl Tree {
    /// busybox with its applets, envinit at /sbin/envinit, /etc basics.
    fn base(kit: &Kit) -> Tree {
        let mut t = Tree::default();
        for dir in ["bin", "sbin", "etc", "tmp", "srv"] {
            t.dir(dir);
        }
        t.file("bin/busybox", fs::read(&kit.busybox).unwrap(), 0o755);
        for applet in APPLETS {
            t.link(&format!("bin/{applet}"), "busybox");
        }
        t.file("sbin/envinit", fs::read(envinit()).unwrap(), 0o755);
        t.text(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
        );
        t.text("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n");
        t
    }

    fn dir(&mut self, path: &str) {
        self.0.push((path.into(), Node::Dir));
    }

    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.0.push((path.into(), Node::File(data, mode)));
    }

    fn text(&mut self, path: &str, text: &str) {
        self.file(path, text.as_bytes().to_vec(), 0o644);
    }

    fn script(&mut self, path: &str, text: &str) {
        self.file(path, format!("#!/bin/sh\n{text}").into_bytes(), 0o755);
    }

    fn link(&mut self, path: &str, target: &str) {
        self.0.push((path.into(), Node::Link(target.into())));
    }

    fn fifo(&mut self, path: &str) {
        self.0.push((path.into(), Node::Fifo));
    }

    fn cpio(&self) -> Vec<u8> {
        let mut cpio = Cpio::default();
        for (path, node) in &self.0 {
            match node {
                Node::Dir => cpio.entry(path, 0o040755, &[], (0, 0)),
                Node::File(data, mode) => cpio.entry(path, 0o100000 | mode, data, (0, 0)),
                Node::Link(target) => cpio.entry(path, 0o120777, target.as_bytes(), (0, 0)),
                Node::Fifo => cpio.entry(path, 0o010644, &[], (0, 0)),
            }
        }
        cpio.finish()
    }

    fn write_to(&self, root: &Path) {
        for (path, node) in &self.0 {
            let full = root.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            match node {
                Node::Dir => fs::create_dir_all(&full).unwrap(),
                Node::File(data, mode) => {
                    fs::write(&full, data).unwrap();
                    fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
                }
                Node::Link(target) => std::os::unix::fs::symlink(target, &full).unwrap(),
                Node::Fifo => {
                    nix::unistd::mkfifo(&full, nix::sys::stat::Mode::from_bits_truncate(0o644))
                        .unwrap()
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Machines

/// At most two machines at once: the two cores.
fn slot() -> SlotGuard {
    static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());
    let mut used = SLOTS.0.lock().unwrap();
    while *used >= 2 {
        used = SLOTS.1.wait(used).unwrap();
    }
    *used += 1;
    SlotGuard(&SLOTS)
}

struct SlotGuard(&'static (Mutex<usize>, Condvar));

impl Drop for SlotGuard {
    fn drop(&mut self) {
        *self.0.0.lock().unwrap() -= 1;
        self.0.1.notify_one();
    }
}

struct Options<'a> {
    /// Kernel parameters after the fixed ones.
    append: &'a str,
    /// Pass `-no-reboot` (a reboot then ends QEMU).
    no_reboot: bool,
    /// A raw disk image as a virtio disk.
    disk: Option<&'a Path>,
    /// `rdinit=` program.
    rdinit: &'a str,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            append: "",
            no_reboot: true,
            disk: None,
            rdinit: "/sbin/envinit",
        }
    }
}

struct Vm {
    /// QEMU, in a process group of its own with the machine's deadline.
    qemu: Option<Running>,
    dir: TempDir,
    _slot: SlotGuard,
}

impl Vm {
    fn boot(kit: &Kit, name: &str, initramfs: &[u8], options: Options<'_>) -> Vm {
        let slot = slot();
        let dir = TempDir::new(name);
        fs::write(dir.path().join("initramfs.cpio"), initramfs).unwrap();
        let append = format!(
            "console=ttyS0 rdinit={} panic=-1 no_timer_check {}",
            options.rdinit, options.append
        );
        let mut command = Command::new(&kit.qemu);
        command
            .args([
                "-accel",
                "tcg",
                "-nodefaults",
                "-display",
                "none",
                "-m",
                "256",
            ])
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log")))
            .arg("-monitor")
            .arg(format!("unix:{},server,nowait", dir.join("monitor.sock")))
            .arg("-kernel")
            .arg(&kit.kernel)
            .arg("-initrd")
            .arg(dir.join("initramfs.cpio"))
            .arg("-append")
            .arg(&append)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        if options.no_reboot {
            command.arg("-no-reboot");
        }
        if let Some(disk) = options.disk {
            command
                .arg("-drive")
                .arg(format!("file={},format=raw,if=virtio", disk.display()));
        }
        let qemu = Running::spawn(command, Mode::Direct, None, VM_TIMEOUT, None);
        Vm {
            qemu: Some(qemu),
            dir,
            _slot: slot,
        }
    }

    /// A machine started by `command` (QEMU, or a script that execs it)
    /// once a slot is free, in a process group of its own with the
    /// machine's deadline; its console and monitor in `dir`.
    fn spawn(dir: TempDir, mut command: Command) -> Vm {
        let slot = slot();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let qemu = Running::spawn(command, Mode::Direct, None, VM_TIMEOUT, None);
        Vm {
            qemu: Some(qemu),
            dir,
            _slot: slot,
        }
    }

    fn qemu(&mut self) -> &mut Running {
        self.qemu.as_mut().expect("QEMU runs")
    }

    fn console(&self) -> String {
        let bytes = fs::read(self.dir.path().join("console.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    fn deadline_passed(&mut self, what: &str) -> ! {
        // Dropping it kills QEMU's process group.
        drop(self.qemu.take());
        panic!(
            "{what}: not within {VM_TIMEOUT:?}; the machine was killed. Console:\n{}",
            self.console()
        );
    }

    /// Waits until the console shows `text` `times` times.
    fn wait_for(&mut self, text: &str, times: usize) {
        loop {
            if self.console().matches(text).count() >= times {
                return;
            }
            if let Some(status) = self.qemu().exited() {
                panic!(
                    "QEMU ended ({status}) before the console showed {text:?}. Console:\n{}",
                    self.console()
                );
            }
            if self.qemu().overdue() {
                self.deadline_passed(&format!("waiting for {text:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for QEMU to end (killed past the deadline, which fails the
    /// test); returns its status and the whole console.
    fn wait(mut self) -> (ExitStatus, String) {
        let qemu = self.qemu.take().expect("QEMU runs");
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| qemu.wait()));
        match out {
            Ok(out) => (out.status, self.console()),
            Err(_) => self.deadline_passed("the machine ending"),
        }
    }

    /// The response to GET `path` from 127.0.0.1:`port` in `netns`, once
    /// something answers there (a port QEMU forwards to the guest).
    fn http_get(&mut self, netns: &Netns, port: u16, path: &str) -> String {
        loop {
            let address = format!("127.0.0.1:{port}");
            if let Some(response) = netns.run(|| engines::http_get(&address, path)) {
                return response;
            }
            if self.qemu().overdue() {
                self.deadline_passed(&format!("waiting for an answer on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A command on the QEMU monitor.
    fn monitor(&self, command: &str) {
        let mut sock = UnixStream::connect(self.dir.path().join("monitor.sock")).unwrap();
        writeln!(sock, "{command}").unwrap();
        // Let QEMU read it before the connection closes.
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = std::io::Read::read(&mut sock, &mut buf);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The machine powered off by envinit: QEMU exited 0, the kernel said
/// "Power down", and nothing panicked.
fn assert_powered_off(status: ExitStatus, console: &str) {
    assert!(
        !console.contains("Kernel panic"),
        "the kernel panicked:\n{console}"
    );
    assert!(
        console.contains("reboot: Power down"),
        "no power-off:\n{console}"
    );
    assert!(status.success(), "QEMU: {status}\n{console}");
}

fn boot_and_wait(kit: &Kit, name: &str, tree: &Tree, append: &str) -> (ExitStatus, String) {
    let vm = Vm::boot(
        kit,
        name,
        &tree.cpio(),
        Options {
            append,
            ..Options::default()
        },
    );
    vm.wait()
}

// ---------------------------------------------------------------------------
// The cases

#[test]
fn the_app_runs_on_the_console_with_kernel_env_and_args_then_the_machine_powers_off() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    // As `docker export` leaves it: /dev/console an empty regular file, no
    // /proc, /sys or /run to mount on (envinit creates them).
    tree.dir("dev");
    tree.text("dev/console", "");
    // No image config, no ENVINIT_HOSTNAME: the name is /etc/hostname's.
    tree.text("etc/hostname", "from-file\n");
    tree.script(
        "app.sh",
        r#"echo "app: argc=$# 1=$1 2=$2 host=$(hostname)"
echo "app: GREETING=$GREETING PATH=$PATH ip=${ip:-none}"
echo "app: stdout is $(readlink /proc/$$/fd/1)"
echo "app: pid=$$ ppid=$PPID"
exit 3
"#,
    );
    let (status, console) = boot_and_wait(
        kit,
        "vm-basic",
        &tree,
        // ip= is the kernel's: this one has no CONFIG_IP_PNP and hands it
        // to init as a variable, which the app never sees.
        r#"GREETING=hello ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off -- /app.sh one "two words""#,
    );
    assert!(
        console.contains("app: argc=2 1=one 2=two words host=from-file"),
        "{console}"
    );
    assert!(
        console.contains(
            "app: GREETING=hello PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ip=none"
        ),
        "{console}"
    );
    let envinit_lines: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("envinit: ") && !l.starts_with("envinit: exit code="))
        .collect();
    assert_eq!(
        envinit_lines,
        [
            "envinit: warn: ip= is the kernel's, and this kernel has no CONFIG_IP_PNP: envinit configures \
             the network from ENVINIT_NET (e.g. ENVINIT_NET=eth0:10.0.2.15/24,eth0:gw=10.0.2.2,dns=10.0.2.3)"
        ],
        "{console}"
    );
    assert!(console.contains("app: stdout is /dev/console"), "{console}");
    assert!(console.contains("ppid=1"), "{console}");
    assert!(console.contains("envinit: exit code=3\n"), "{console}");
    assert_powered_off(status, &console);
}

#[test]
fn an_image_config_gives_entrypoint_cmd_env_workdir_and_user() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    // The image's Hostname wins over /etc/hostname.
    tree.text("etc/hostname", "from-file\n");
    tree.dir("etc/envinit");
    tree.text(
        "etc/envinit/image.json",
        r#"{"Hostname":"from-image","User":"nobody","Env":["PATH=/bin:/sbin","A=image","B=image"],
            "Cmd":["from-cmd"],"WorkingDir":"/srv/app","Entrypoint":["/bin/sh","/entry.sh"],
            "Labels":{"x":"y"},"StopSignal":"SIGTERM"}"#,
    );
    tree.script(
        "entry.sh",
        r#"echo "entry: args=$* A=$A B=$B PATH=$PATH pwd=$(pwd) host=$(hostname) uid=$(id -u)"
"#,
    );
    let (status, console) = boot_and_wait(kit, "vm-image", &tree, "B=kernel");
    assert!(
        console.contains(
            "entry: args=from-cmd A=image B=kernel PATH=/bin:/sbin pwd=/srv/app host=from-image"
        ),
        "{console}"
    );
    // User is applied as --user: the command runs as nobody.
    assert!(console.contains("uid=65534"), "{console}");
    assert!(console.contains("envinit: exit code=0"), "{console}");
    assert_powered_off(status, &console);
}

/// `--image-config FILE` (the flag form, on the kernel command line after
/// `--`) names a config that is not at the default path, and
/// `ENVINIT_HOSTNAME` wins over the image's Hostname and /etc/hostname.
#[test]
fn the_image_config_flag_names_the_file_and_envinit_hostname_wins() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    tree.text("etc/hostname", "from-file\n");
    tree.text(
        "srv/image.json",
        r#"{"Hostname":"from-image","Env":["FROM=image"],
            "Cmd":["/bin/sh","-c","echo \"app: FROM=$FROM host=$(hostname)\""]}"#,
    );
    let (status, console) = boot_and_wait(
        kit,
        "vm-image-flag",
        &tree,
        "ENVINIT_HOSTNAME=from-kernel -- --image-config /srv/image.json",
    );
    assert!(
        console.contains("app: FROM=image host=from-kernel"),
        "{console}"
    );
    assert!(console.contains("envinit: exit code=0"), "{console}");
    assert_powered_off(status, &console);
}

/// docs/exit-codes.md, 71 in VM mode: an image config that cannot be read
/// or parsed, or a WorkingDir that cannot be entered, is one line naming
/// the file (or the directory) and why; nothing runs; the machine powers
/// off. Two machines at a time.
#[test]
fn an_image_config_that_cannot_be_used_is_one_line_then_71() {
    let Some(kit) = kit() else { return };
    // (name, image.json at the default path if any, kernel words, the line)
    let cases: [(&str, Option<&str>, &str, &str); 3] = [
        (
            "missing",
            None,
            "ENVINIT_IMAGE_CONFIG=/etc/envinit/missing.json",
            "envinit: error: cannot read the image config /etc/envinit/missing.json: \
             No such file or directory",
        ),
        (
            "malformed",
            Some(r#"{"Cmd":["/bin/echo","ran"],"#),
            "",
            "envinit: error: /etc/envinit/image.json: line 1 column ",
        ),
        (
            "workdir",
            Some(r#"{"Cmd":["/bin/echo","ran"],"WorkingDir":"/etc/passwd/app"}"#),
            "",
            "envinit: error: cannot enter WorkingDir /etc/passwd/app: Not a directory",
        ),
    ];
    std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(name, json, append, line)| {
                let handle = scope.spawn(move || {
                    let mut tree = Tree::base(kit);
                    tree.dir("etc/envinit");
                    if let Some(json) = json {
                        tree.text("etc/envinit/image.json", json);
                    }
                    boot_and_wait(kit, &format!("vm-71-{name}"), &tree, append)
                });
                (name, line, handle)
            })
            .collect();
        for (name, line, handle) in runs {
            let (status, console) = handle.join().unwrap_or_else(|_| panic!("{name}: failed"));
            let errors: Vec<&str> = console
                .lines()
                .filter(|l| l.starts_with("envinit: error: "))
                .collect();
            assert!(
                errors.len() == 1 && errors[0].starts_with(line),
                "{name}: want one line starting {line:?}:\n{console}"
            );
            assert!(
                !console.contains("\nran\n"),
                "{name}: the command ran:\n{console}"
            );
            assert!(
                console.contains("envinit: exit code=71"),
                "{name}:\n{console}"
            );
            assert_powered_off(status, &console);
        }
    });
}

#[test]
fn a_nul_in_the_image_configs_cmd_or_env_is_one_line_naming_file_and_field_then_71() {
    // Cmd used to give 64 without the file; Env made envinit panic (the
    // kernel then panics: "Attempted to kill init").
    let Some(kit) = kit() else { return };
    for (field, json) in [
        ("Cmd", r#"{"Cmd":["/bin/echo","a\u0000b"]}"#),
        ("Env", r#"{"Env":["A=a\u0000b"],"Cmd":["/bin/echo","x"]}"#),
    ] {
        let mut tree = Tree::base(kit);
        tree.dir("etc/envinit");
        tree.text("etc/envinit/image.json", json);
        let (status, console) = boot_and_wait(kit, "vm-image-nul", &tree, "");
        let column = json.find("\\u0000").unwrap() + 1;
        assert!(
            console.contains(&format!(
                "envinit: error: /etc/envinit/image.json: line 1 column {column}: {field}: \
                 a string holds \\u0000 (a NUL byte)"
            )),
            "{console}"
        );
        assert!(console.contains("envinit: exit code=71"), "{console}");
        assert_powered_off(status, &console);
    }
}

#[test]
fn a_fifo_as_the_image_config_is_refused_at_once_then_71() {
    // It used to block the boot forever (until this test's deadline).
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    tree.dir("etc/envinit");
    tree.fifo("etc/envinit/image.json");
    let (status, console) = boot_and_wait(kit, "vm-image-fifo", &tree, "");
    let errors: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("envinit: error: "))
        .collect();
    assert_eq!(
        errors,
        [
            "envinit: error: /etc/envinit/image.json: the image config is a FIFO, not a \
          regular file: give the file `docker image inspect --format '{{json .Config}}'` wrote"
        ],
        "{console}"
    );
    assert!(console.contains("envinit: exit code=71"), "{console}");
    assert_powered_off(status, &console);
}

#[test]
fn an_envinit_entrypoint_renders_templates_with_the_vms_memory() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    tree.dir("etc/envinit");
    tree.text(
        "etc/envinit/image.json",
        r#"{"Entrypoint":["/sbin/envinit","--template","/etc/app.conf.tmpl:/run/app.conf"],
            "Cmd":["/bin/sh","-c","cat /run/app.conf; grep MemTotal /proc/meminfo; echo ppid=$PPID"]}"#,
    );
    tree.text(
        "etc/app.conf.tmpl",
        "memory_mib={{ container.memory_mib }}\ncpus={{ container.cpus }}\n",
    );
    let (status, console) = boot_and_wait(kit, "vm-template", &tree, "");
    let field = |prefix: &str| -> u64 {
        let line = console
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{console}"));
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    let mem_total_kib = field("MemTotal:");
    assert_eq!(field("memory_mib="), mem_total_kib / 1024, "{console}");
    assert!(
        (200..=256).contains(&field("memory_mib=")),
        "a 256 MiB machine:\n{console}"
    );
    assert_eq!(field("cpus="), 1, "{console}");
    // One envinit: the command is its child, not a second envinit's.
    assert!(console.contains("ppid=1"), "{console}");
    assert_powered_off(status, &console);
}

#[test]
fn proc_sys_dev_pts_and_shm_are_usable_and_orphans_are_reaped() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    tree.script(
        "app.sh",
        r#"for d in /proc /sys /dev /dev/pts /dev/shm /dev/mqueue /run /sys/fs/cgroup; do
  grep -q "^[^ ]* $d " /proc/mounts && echo "mounted $d"
done
echo "fd link $(readlink /dev/fd) $(readlink /dev/stdin) ptmx $(readlink /dev/ptmx)"
echo probe > /dev/shm/x && echo "shm: $(cat /dev/shm/x)"
# A pty: opening /dev/ptmx allocates one in this devpts instance.
exec 3<>/dev/ptmx && echo "pty: $(ls /dev/pts | tr '\n' ' ')"
exec 3>&-
echo "lo flags: $(cat /sys/class/net/lo/flags)"
# Orphans: their parent exits at once, so they are reparented to PID 1.
sh -c 'sleep 0.3 & sleep 0.3 & exit 0'
sleep 1.5
zombies=0
for s in /proc/[0-9]*/stat; do
  case "$(cat $s 2>/dev/null)" in *") Z "*) zombies=$((zombies+1));; esac
done
echo "zombies: $zombies"
# One more left running at the end: envinit stops it before powering off.
sleep 1000 &
exit 0
"#,
    );
    let (status, console) = boot_and_wait(kit, "vm-fs", &tree, "-- /app.sh");
    for dir in [
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/run",
        "/sys/fs/cgroup",
    ] {
        assert!(
            console.contains(&format!("mounted {dir}\n")),
            "{dir}:\n{console}"
        );
    }
    assert!(
        console.contains("fd link /proc/self/fd /proc/self/fd/0 ptmx pts/ptmx"),
        "{console}"
    );
    assert!(console.contains("shm: probe"), "{console}");
    assert!(console.contains("pty: 0 ptmx"), "{console}");
    assert!(console.contains("lo flags: 0x9"), "loopback up:\n{console}");
    assert!(console.contains("zombies: 0"), "{console}");
    assert!(console.contains("envinit: exit code=0"), "{console}");
    assert_powered_off(status, &console);
}

/// An app that says "ready" and then runs until a signal.
fn stop_test_tree(kit: &Kit, trap: &str, stop_signal: &str) -> Tree {
    let mut tree = Tree::base(kit);
    tree.dir("etc/envinit");
    tree.text(
        "etc/envinit/image.json",
        &format!(r#"{{"Cmd":["/bin/sh","/app.sh"],"StopSignal":"{stop_signal}"}}"#),
    );
    tree.script(
        "app.sh",
        &format!("{trap}\necho app: ready\nwhile true; do sleep 0.1; done\n"),
    );
    tree
}

#[test]
fn ctrl_alt_del_sends_the_stop_signal_and_the_machine_powers_off() {
    let Some(kit) = kit() else { return };
    let tree = stop_test_tree(
        kit,
        r#"trap 'echo "app: got USR1"; exit 7' USR1"#,
        "SIGUSR1",
    );
    let mut vm = Vm::boot(
        kit,
        "vm-cad",
        &tree.cpio(),
        Options {
            append: "ENVINIT_GRACE=30s",
            ..Options::default()
        },
    );
    vm.wait_for("app: ready", 1);
    let sent = Instant::now();
    vm.monitor("sendkey ctrl-alt-delete");
    let (status, console) = vm.wait();
    let took = sent.elapsed();
    assert!(console.contains("app: got USR1"), "{console}");
    assert!(console.contains("envinit: exit code=7"), "{console}");
    assert!(
        took < Duration::from_secs(20),
        "took {took:?}, within the grace of 30 s"
    );
    assert_powered_off(status, &console);
}

#[test]
fn an_app_that_ignores_ctrl_alt_del_is_killed_after_the_grace_period() {
    let Some(kit) = kit() else { return };
    let tree = stop_test_tree(kit, "trap '' TERM INT", "");
    let mut vm = Vm::boot(
        kit,
        "vm-cad-ignored",
        &tree.cpio(),
        Options {
            append: "ENVINIT_GRACE=2s",
            ..Options::default()
        },
    );
    vm.wait_for("app: ready", 1);
    let sent = Instant::now();
    vm.monitor("sendkey ctrl-alt-delete");
    let (status, console) = vm.wait();
    let took = sent.elapsed();
    assert!(console.contains("grace period over"), "{console}");
    assert!(console.contains("envinit: exit code=137"), "{console}");
    assert!(
        took >= Duration::from_secs(2),
        "killed before the grace: {took:?}"
    );
    assert_powered_off(status, &console);
}

#[test]
fn vm_exit_reboot_restarts_the_machine() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    tree.script("app.sh", "echo app: booted\n");
    let mut vm = Vm::boot(
        kit,
        "vm-reboot",
        &tree.cpio(),
        Options {
            append: "ENVINIT_VM_EXIT=reboot -- /app.sh",
            no_reboot: false,
            ..Options::default()
        },
    );
    vm.wait_for("app: booted", 2);
    let console = vm.console();
    assert!(console.contains("reboot: Restarting system"), "{console}");
    assert!(!console.contains("Kernel panic"), "{console}");
}

#[test]
fn a_failed_mount_is_one_line_then_power_off_with_71() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    // /sys is a file: nothing can be mounted on it.
    tree.text("sys", "not a directory\n");
    let (status, console) = boot_and_wait(kit, "vm-mount-fails", &tree, "-- /bin/true");
    assert!(
        console.contains("envinit: error: cannot mount sysfs on /sys: Not a directory"),
        "{console}"
    );
    assert!(console.contains("envinit: exit code=71"), "{console}");
    assert_powered_off(status, &console);
}

/// The `init=` path: an ext4 root on a virtio disk, mounted read-only and
/// reached through a hand-written busybox first stage that exports
/// `PATH=/bin` and moves its /proc and /sys over, as Debian's initramfs
/// does. envinit knows it is a machine's init without `ENVINIT_VM=on` (PID
/// 1 of the initial PID namespace); the image's PATH wins over the stage's,
/// and nothing else the stage exported reaches the app; `ip=` (which this
/// kernel does not read) never reaches the app; /etc/hosts and
/// /etc/hostname, empty in the image, are provided without writing the
/// read-only root, and /etc/resolv.conf, missing there, cannot be: one
/// warning.
#[test]
fn init_path_read_only_ext4_root_after_a_stage_that_moved_proc() {
    let Some(kit) = kit() else { return };
    if !prerequisite(
        "mkfs.ext4",
        which("mkfs.ext4")
            .is_none()
            .then(|| "e2fsprogs is not installed".into()),
    ) {
        return;
    }
    let work = TempDir::new("vm-init-path");
    // The root filesystem, as `docker export` of an image would give it.
    let mut root = Tree::base(kit);
    for dir in ["proc", "sys", "dev", "run", "etc/envinit"] {
        root.dir(dir);
    }
    root.text("dev/console", "");
    root.text("etc/hosts", "");
    root.text("etc/hostname", "");
    root.link("sbin/init", "envinit");
    root.text(
        "etc/envinit/image.json",
        r#"{"Env":["PATH=/image/bin:/bin","FROM_IMAGE=yes"],"Entrypoint":["/app.sh"]}"#,
    );
    root.script(
        "app.sh",
        r#"echo "app: on $(grep ' / ' /proc/mounts | cut -d' ' -f1,3,4 | cut -d, -f1) args=$* ROOTVAR=$ROOTVAR"
echo "app: pts $(grep -c ' /dev/pts ' /proc/mounts) proc $(grep -c ' /proc ' /proc/mounts)"
echo "app: PATH=$PATH FROM_IMAGE=$FROM_IMAGE ip=${ip:-none} STAGEVAR=${STAGEVAR:-none}"
echo "app: hosts $(grep -c localhost /etc/hosts) $(tail -n1 /etc/hosts | tr '\t' ' ')"
echo "app: hostname $(hostname) $(cat /etc/hostname)"
"#,
    );
    let dir = work.path().join("root");
    root.write_to(&dir);
    let image = work.path().join("root.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&dir)
        .arg(&image)
        .arg("64M"))
    .unwrap();

    // The first stage: load virtio, mount the disk, switch_root into envinit.
    let mut stage = Tree::default();
    for d in ["bin", "lib", "proc", "sys", "dev", "newroot"] {
        stage.dir(d);
    }
    stage.file("bin/busybox", fs::read(&kit.busybox).unwrap(), 0o755);
    for applet in APPLETS {
        stage.link(&format!("bin/{applet}"), "busybox");
    }
    let mut insmods = String::new();
    for module in &kit.modules {
        let name = module.file_name().unwrap().to_str().unwrap();
        stage.file(&format!("lib/{name}"), fs::read(module).unwrap(), 0o644);
        insmods.push_str(&format!("insmod /lib/{name}\n"));
    }
    stage.script(
        "init",
        &format!(
            r#"export PATH=/bin STAGEVAR=stage ROOTVAR=changed-by-the-stage
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{insmods}
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
mount -t ext4 -o ro /dev/vda /newroot || echo "stage: cannot mount /dev/vda"
# As Debian's initramfs does: /proc and /sys move into the new root.
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
umount -l /dev
exec switch_root /newroot /sbin/init "$@"
"#
        ),
    );
    let vm = Vm::boot(
        kit,
        "vm-init-path-qemu",
        &stage.cpio(),
        Options {
            append: "ROOTVAR=from-kernel ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off \
                     ENVINIT_HOSTNAME=web1 ENVINIT_NET=dns=10.0.2.3 -- hello",
            rdinit: "/init",
            disk: Some(&image),
            ..Options::default()
        },
    );
    let (status, console) = vm.wait();
    assert!(
        console.contains("app: on /dev/vda ext4 ro args=hello ROOTVAR=from-kernel"),
        "{console}"
    );
    // /proc was there already (mounted once), /dev/pts was added.
    assert!(console.contains("app: pts 1 proc 1"), "{console}");
    assert!(
        console.contains("app: PATH=/image/bin:/bin FROM_IMAGE=yes ip=none STAGEVAR=none"),
        "{console}"
    );
    assert!(
        console.contains("app: hosts 2 127.0.1.1 web1\n"),
        "{console}"
    );
    assert!(console.contains("app: hostname web1 web1\n"), "{console}");
    let warnings: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("envinit: warn"))
        .collect();
    assert_eq!(
        warnings,
        [
            "envinit: warn: cannot create /etc/resolv.conf to mount the VM's over it: \
             Read-only file system (on a read-only root, add an empty /etc/resolv.conf to the image)"
        ],
        "{console}"
    );
    assert!(console.contains("envinit: exit code=0"), "{console}");
    assert_powered_off(status, &console);
    // Nothing of the image was written: /etc/hosts is still empty.
    let hosts = run(Command::new("debugfs")
        .args(["-R", "cat /etc/hosts"])
        .arg(&image))
    .unwrap_or_default();
    assert_eq!(hosts, "", "the image's /etc/hosts was written");
    let state = run(Command::new("dumpe2fs").arg("-h").arg(&image)).unwrap_or_default();
    assert!(
        state
            .lines()
            .any(|l| l.starts_with("Filesystem state:") && l.trim_end().ends_with("clean")),
        "the root filesystem was not left clean:\n{state}"
    );
}

/// What VM mode is told on the kernel command line, when it cannot be done:
/// one line each, then the power-off with the code (even with
/// `--vm-exit reboot`: a broken configuration does not boot-loop).
#[test]
fn network_and_volume_settings_that_cannot_apply_are_one_line_then_power_off() {
    let Some(kit) = kit() else { return };
    let mut tree = Tree::base(kit);
    tree.script("app.sh", "echo app: ran\n");
    for (append, line, code) in [
        (
            "ENVINIT_VM_EXIT=reboot ENVINIT_NET=eth0:10.0.2.15 -- /app.sh",
            "envinit: error: ENVINIT_NET: \"eth0:10.0.2.15\": give the prefix length: IFACE:ADDRESS/PREFIX",
            78,
        ),
        (
            "ENVINIT_NET=eth0:10.0.2.15/24 -- /app.sh",
            "envinit: error: ENVINIT_NET: no interface eth0: load its driver (virtio_net in the first stage) \
             and check that the VMM gives the VM a network device, or fix its name",
            71,
        ),
        (
            "ENVINIT_MOUNT=/dev/vdz:/data -- /app.sh",
            "envinit: error: ENVINIT_MOUNT: cannot mount /dev/vdz (ext4) on /data: No such file or directory \
             (check that the VMM attaches the disk, that its driver is loaded and that it holds a filesystem of type ext4)",
            71,
        ),
    ] {
        let (status, console) = boot_and_wait(kit, "vm-settle-fails", &tree, append);
        let envinit_lines: Vec<&str> = console
            .lines()
            .filter(|l| l.starts_with("envinit: ") && !l.starts_with("envinit: exit code="))
            .collect();
        assert_eq!(envinit_lines, [line], "{append}:\n{console}");
        assert!(
            console.contains(&format!("envinit: exit code={code}\n")),
            "{append}:\n{console}"
        );
        assert!(!console.contains("app: ran"), "{console}");
        assert_powered_off(status, &console);
    }
}

// ---------------------------------------------------------------------------
// Without a machine

#[test]
fn vm_on_outside_pid1_is_a_usage_error() {
    let out = Spec::direct(["--vm", "on", "true"]).run();
    assert_eq!(out.code, Some(64), "{}", out.describe());
    let stderr = out.err();
    assert!(stderr.contains("--vm on: envinit is not PID 1"), "{stderr}");
}

#[test]
fn facts_that_cannot_be_read_are_errors_at_the_template_position() {
    if !prerequisite(
        "unshare --mount",
        run(Command::new("unshare").args(["--mount", "true"])).err(),
    ) {
        return;
    }
    let dir = TempDir::new("vm-no-proc");
    let template = dir.path().join("app.conf.tmpl");
    fs::write(
        &template,
        "workers = 2\nheap = {{ container.memory_mib }}m\n",
    )
    .unwrap();
    // A mount namespace whose /proc is gone, envinit not PID 1 (so not a VM).
    let out = common::run_for(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount -l /proc && exec \"$0\" --check -t \"$1\"")
            .arg(envinit())
            .arg(format!("{}:{}", template.display(), dir.join("app.conf"))),
        common::RUN_TIMEOUT,
    );
    let stderr = out.err();
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:2:11: container.memory_mib: cannot read /proc/meminfo: No such file or directory",
            template.display()
        )),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Images made into VMs by tools/vm-from-image

/// A network namespace of the test's own, for QEMU: loopback up and a DNS
/// server on 127.0.0.1:53 that answers one name, so that the guest's
/// lookups through QEMU's user-network DNS (10.0.2.3, which forwards to the
/// server of the host's /etc/resolv.conf) reach it and nothing outside this
/// machine. QEMU gets a mount namespace whose /etc/resolv.conf names
/// 127.0.0.1. Everything is set up before QEMU starts.
struct Netns {
    fd: fs::File,
    resolv: TempDir,
}

/// The name the test's DNS server answers, and its address.
const DNS_NAME: &str = "vm-dns.envinit.test";
const DNS_ADDRESS: [u8; 4] = [192, 0, 2, 7];

impl Netns {
    fn new() -> Netns {
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: unshare on this thread only (its own network
            // namespace); the thread serves DNS there until the test ends.
            let rc = unsafe { nix::libc::unshare(nix::libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            loopback_up();
            let socket = std::net::UdpSocket::bind("127.0.0.1:53").expect("the DNS port");
            sent.send(fs::File::open("/proc/thread-self/ns/net").unwrap())
                .unwrap();
            serve_dns(&socket);
        });
        let fd = received
            .recv_timeout(Duration::from_secs(10))
            .expect("the namespace");
        let resolv = TempDir::new("vm-resolv");
        fs::write(resolv.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        Netns { fd, resolv }
    }

    /// `command` runs in the namespace, with its own /etc/resolv.conf.
    fn enter(&self, command: &mut Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.fd.as_raw_fd();
        let source = std::ffi::CString::new(self.resolv.join("resolv.conf")).unwrap();
        // SAFETY: between fork and exec only system calls on memory
        // prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                use nix::libc::*;
                let ok = setns(fd, CLONE_NEWNET) == 0
                    && unshare(CLONE_NEWNS) == 0
                    && mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        MS_REC | MS_PRIVATE,
                        std::ptr::null(),
                    ) == 0
                    && mount(
                        source.as_ptr(),
                        c"/etc/resolv.conf".as_ptr(),
                        std::ptr::null(),
                        MS_BIND,
                        std::ptr::null(),
                    ) == 0;
                match ok {
                    true => Ok(()),
                    false => Err(std::io::Error::last_os_error()),
                }
            });
        }
    }

    /// `f` run on a thread in the namespace (a connection to a port QEMU
    /// forwards there).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let fd = self.fd.as_raw_fd();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns on this thread only.
                    assert_eq!(unsafe { nix::libc::setns(fd, nix::libc::CLONE_NEWNET) }, 0);
                    f()
                })
                .join()
                .unwrap()
        })
    }
}

/// `lo` up in this thread's network namespace.
fn loopback_up() {
    #[repr(C)]
    struct Ifreq {
        name: [u8; 16],
        flags: i16,
        pad: [u8; 22],
    }
    let mut req = Ifreq {
        name: [0; 16],
        flags: 0,
        pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: an ifreq of the size the kernel reads and writes.
    unsafe {
        use nix::libc::*;
        let sock = socket(AF_INET, SOCK_DGRAM, 0);
        assert!(ioctl(sock, SIOCGIFFLAGS as _, &mut req) == 0);
        req.flags |= IFF_UP as i16;
        assert!(ioctl(sock, SIOCSIFFLAGS as _, &req) == 0);
        close(sock);
    }
}

/// Answers A queries for [`DNS_NAME`] with [`DNS_ADDRESS`], other types of
/// it with no record, any other name with NXDOMAIN.
fn serve_dns(socket: &std::net::UdpSocket) {
    let mut query = [0u8; 512];
    while let Ok((len, from)) = socket.recv_from(&mut query) {
        if len < 17 {
            continue;
        }
        let mut labels = Vec::new();
        let mut at = 12;
        while at < len && query[at] != 0 {
            let n = query[at] as usize;
            labels.push(
                String::from_utf8_lossy(&query[at + 1..(at + 1 + n).min(len)]).to_lowercase(),
            );
            at += 1 + n;
        }
        let end = at + 5;
        if end > len {
            continue;
        }
        let kind = u16::from_be_bytes([query[at + 1], query[at + 2]]);
        let known = labels.join(".") == DNS_NAME;
        let mut reply = query[..end].to_vec();
        reply[2] = 0x81;
        reply[3] = if known { 0x80 } else { 0x83 };
        reply[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
        if known && kind == 1 {
            reply[7] = 1;
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&DNS_ADDRESS);
        }
        let _ = socket.send_to(&reply, from);
    }
}

/// The examples' nginx image (examples/php-nginx/nginx.Dockerfile on the
/// Debian base of tests/fixtures/images.sh), plus what lets the test look
/// inside: a script that prints what the names resolve to and keeps a
/// count of boots on the volume, then execs nginx as the image's Cmd does;
/// and two templates beside nginx.conf's that take a secret from
/// /run/secrets and one from the .env of the secrets disk (the script
/// prints their hashes, never them). Tagged for this run; removed after.
struct TestImage(String);

impl Drop for TestImage {
    fn drop(&mut self) {
        engines::quietly("docker", &["rmi", "-f", &self.0]);
    }
}

fn nginx_vm_image() -> Option<TestImage> {
    let envinit = engines::envinit_binary()?;
    let base = engines::base_image()?;
    let context = engines::context("php-nginx", &envinit, &[]);
    let dir = &context.path;
    let mut dockerfile = fs::read_to_string(dir.join("nginx.Dockerfile")).unwrap();
    dockerfile.push_str("COPY vm-check.sh /vm-check.sh\nCMD [\"/bin/sh\", \"/vm-check.sh\"]\n");
    fs::write(dir.join("vm.Dockerfile"), dockerfile).unwrap();
    fs::write(
        dir.join("nginx/vm-secret.txt.tmpl"),
        "{{ secrets.api_token }}",
    )
    .unwrap();
    fs::write(dir.join("nginx/vm-env.txt.tmpl"), "{{ DB_PASSWORD }}").unwrap();
    fs::write(
        dir.join("vm-check.sh"),
        format!(
            r#"echo "vm-check: uptime $(cut -d' ' -f1 /proc/uptime)"
echo "vm-check: localhost $(getent ahostsv4 localhost | head -n1 | cut -d' ' -f1)"
h=$(hostname)
echo "vm-check: hostname $h is $(getent hosts "$h" | cut -d' ' -f1)"
echo "vm-check: dns $(getent hosts {DNS_NAME} | cut -d' ' -f1)"
echo "vm-check: search $(getent hosts vm-dns | cut -d' ' -f1)"
echo "vm-check: mtu $(cat /sys/class/net/eth0/mtu) inet6 $(grep -c '^fd000000000000000000000000000015 ' /proc/net/if_inet6)"
echo "vm-check: resolv.conf $(cat /etc/resolv.conf | tr '\n' ' ')"
echo "vm-check: path $PATH"
echo "vm-check: mode $APP_MODE"
echo "vm-check: ip=${{ip:-none}}"
echo "vm-check: secret $(sha256sum < /etc/nginx/vm-secret.txt | cut -c1-64)"
echo "vm-check: env secret $(sha256sum < /etc/nginx/vm-env.txt | cut -c1-64)"
echo "vm-check: in cmdline $(grep -c -F "$DB_PASSWORD" /proc/cmdline)"
echo "vm-check: secrets dir $(stat -c '%a %u' /run/secrets)"
echo boot >> /var/lib/app/boots
echo "vm-check: boots $(wc -l < /var/lib/app/boots)"
echo "vm-check: ready"
exec nginx -g 'daemon off;'
"#
        ),
    )
    .unwrap();
    let tag = engines::tag("envinit-vm-nginx");
    let out = common::run_for(
        Command::new("docker")
            .args(["build", "-q", "--build-arg"])
            .arg(format!("BASE={base}"))
            .arg("-f")
            .arg(dir.join("vm.Dockerfile"))
            .args(["-t", &tag])
            .arg(dir),
        engines::COMMAND_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(TestImage(tag))
}

fn sha256(text: &str) -> String {
    let out = common::run_for(
        Command::new("sh")
            .args(["-c", "printf %s \"$1\" | sha256sum", "sh"])
            .arg(text),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// A free TCP port on 127.0.0.1 (of the namespace `f` runs in).
fn free_port(netns: &Netns) -> u16 {
    netns.run(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// The line of the console that starts with `prefix`, without it.
fn line<'a>(console: &'a str, prefix: &str) -> &'a str {
    console
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}:\n{console}"))
}

/// Runs `out`/run-qemu of tools/vm-from-image in `netns`.
fn boot_tool_vm(name: &str, out: &Path, netns: &Netns) -> Vm {
    let dir = TempDir::new(name);
    let mut command = Command::new(out.join("run-qemu"));
    command
        .env("ACCEL", "tcg")
        .env("SERIAL", format!("file:{}", dir.join("console.log")))
        .arg("-monitor")
        .arg(format!("unix:{},server,nowait", dir.join("monitor.sock")));
    netns.enter(&mut command);
    Vm::spawn(dir, command)
}

/// Runs tools/vm-from-image with `args`; its output directory.
fn vm_from_image(kit: &Kit, out: &Path, args: &[&str]) {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/vm-from-image");
    let result = common::run_for(
        Command::new(tool)
            .arg("--kernel")
            .arg(&kit.kernel)
            .arg("--modules")
            .arg(&kit.module_dir)
            .arg("--envinit")
            .arg(envinit())
            .args(args)
            .arg(out),
        engines::COMMAND_TIMEOUT,
    );
    assert!(
        result.status.success(),
        "tools/vm-from-image {args:?}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// The examples' nginx image, made into a VM by tools/vm-from-image with no
/// hand-written stage, booted twice: it serves through QEMU's port forward,
/// names resolve inside (localhost, its hostname, a name through QEMU's
/// DNS, and the same by its search domain), ENVINIT_NET's IPv6 address and
/// MTU are there, a secret from the secrets disk and one from its .env
/// reach templates and appear nowhere else (not on the console, not in
/// /proc/cmdline), the volume keeps a file across the boots, and the ACPI
/// power button stops nginx gracefully each time.
#[test]
fn the_nginx_image_as_a_vm_serves_resolves_keeps_its_volume_reads_secrets_and_stops_on_the_power_button()
 {
    let Some(kit) = kit() else { return };
    let Some(image) = nginx_vm_image() else {
        return;
    };
    let work = TempDir::new("vm-nginx");
    let out = work.path().join("vm");
    let secret = format!("api-{}-token", std::process::id());
    let db_password = format!("db-{}-password", std::process::id());
    fs::write(work.path().join("api_token"), &secret).unwrap();
    fs::write(
        work.path().join("env"),
        format!(
            "# from the secrets disk\nAPP_MODE=from-the-secrets-disk\nDB_PASSWORD={db_password}\n"
        ),
    )
    .unwrap();
    let netns = Netns::new();
    let port = free_port(&netns);
    let api_token = format!("api_token={}", work.join("api_token"));
    vm_from_image(
        kit,
        &out,
        &[
            "--secret",
            &api_token,
            "--env-file",
            &work.join("env"),
            "--volume",
            "data:64M:/var/lib/app",
            "--publish",
            &format!("{port}:8080"),
            "--net",
            "eth0:10.0.2.15/24,eth0:gw=10.0.2.2,eth0:fd00::15/64,eth0:mtu=1400,dns=10.0.2.3,search=envinit.test",
            "--memory",
            "256",
            "--cpus",
            "1",
            "--append",
            // No php-fpm in this VM: nginx's upstream must resolve.
            "ENVINIT_GRACE=30s ENVINIT_LOG=info FPM_UPSTREAMS=127.0.0.1:9000",
            image.0.as_str(),
        ],
    );
    let cmdline = fs::read_to_string(out.join("cmdline")).unwrap();
    assert!(!cmdline.contains(&secret) && !cmdline.contains(&db_password));

    for boot in 1..=2 {
        let mut vm = boot_tool_vm("vm-nginx-boot", &out, &netns);
        vm.wait_for("vm-check: ready", 1);
        let response = vm.http_get(&netns, port, "/healthz");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let console = vm.console();
        assert_eq!(line(&console, "vm-check: boots "), boot.to_string());
        let sent = Instant::now();
        vm.monitor("system_powerdown");
        let (status, console) = vm.wait();
        let took = sent.elapsed();
        assert!(console.contains("envinit: exit code=0\n"), "{console}");
        assert!(!console.contains("grace period over"), "{console}");
        assert!(
            took < Duration::from_secs(20),
            "stopped in {took:?}:\n{console}"
        );
        assert_powered_off(status, &console);
        if boot == 2 {
            break;
        }
        // Names: localhost, the hostname (its MAC address: no image,
        // kernel or /etc/hostname names one) on the VM's address, and a
        // name through QEMU's DNS to the test's server.
        assert_eq!(line(&console, "vm-check: localhost "), "127.0.0.1");
        assert_eq!(
            line(&console, "vm-check: hostname "),
            "vm-525400123456 is 10.0.2.15"
        );
        assert_eq!(line(&console, "vm-check: dns "), "192.0.2.7");
        assert_eq!(line(&console, "vm-check: search "), "192.0.2.7");
        assert_eq!(
            line(&console, "vm-check: resolv.conf "),
            "search envinit.test nameserver 10.0.2.3 "
        );
        // ENVINIT_NET's IPv6 address and MTU.
        assert_eq!(line(&console, "vm-check: mtu "), "1400 inet6 1");
        // The image's Env, the .env of the secrets disk.
        assert_eq!(
            line(&console, "vm-check: path "),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
        assert_eq!(line(&console, "vm-check: mode "), "from-the-secrets-disk");
        // The secrets reached the templates, and nothing else.
        assert_eq!(line(&console, "vm-check: secret "), sha256(&secret));
        assert_eq!(
            line(&console, "vm-check: env secret "),
            sha256(&db_password)
        );
        assert_eq!(line(&console, "vm-check: in cmdline "), "0");
        assert_eq!(line(&console, "vm-check: secrets dir "), "700 0");
        assert!(
            !console.contains(&secret) && !console.contains(&db_password),
            "a secret on the console:\n{console}"
        );
    }
}
