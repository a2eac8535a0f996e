//! Container facts: the memory limit and usable CPU count of the cgroup this
//! process runs in, else the machine's. Templates see them as `container.*`.
//!
//! # What it owns
//!
//! Finding this process's cgroups and reading their limits, on cgroup v1, v2
//! and hybrid hosts (a v2 hierarchy, often with no controllers, mounted beside
//! v1 controller hierarchies).
//!
//! # How the cgroup is found
//!
//! `/proc/self/cgroup` names the process's cgroup in each hierarchy, relative
//! to that hierarchy's root (`ID:controllers:path`, with `0::path` for v2).
//! `/proc/self/mountinfo` says where each hierarchy is mounted and which of its
//! cgroups is the mount's root: the directory is the mount point joined with
//! the path minus the mount root. Inside a container with a cgroup namespace
//! the mount root and the path are usually both `/`; without one, the mount
//! root may be the container's own cgroup, a prefix of the path. When the
//! joined directory does not exist (a path from another namespace), leading
//! components are dropped until one does, and the mount point is the last
//! resort.
//!
//! For each resource the v1 controller hierarchy is preferred when mounted and
//! listed in `/proc/self/cgroup`; otherwise v2 is used if its mount's
//! `cgroup.controllers` lists the controller.
//!
//! # What it promises
//!
//! - [`Facts::detect`] never panics. The machine's figures are the floor:
//!   memory is `MemTotal` from `/proc/meminfo`, CPUs are those listed in
//!   `/sys/devices/system/cpu/online` (in a VM: the VM's memory and online
//!   CPUs). When one of these two cannot be read (no /proc, no /sys, or not
//!   the expected text) detection fails with [`Unreadable`] naming the file,
//!   never a silent 0: templates report it at the `container.*` that asked.
//!   An unreadable, missing or malformed cgroup file counts as "no limit"
//!   from that file.
//! - Memory is the smallest limit on the path from the process's cgroup up to
//!   the mount's root (a parent's limit applies to its children), capped at
//!   `MemTotal`. v1 `memory.limit_in_bytes` of 2^62 or more (the kernel
//!   writes 9223372036854771712) and v2 `memory.max` of `max` mean no limit.
//! - CPUs are the minimum of the online CPUs, the cpuset (`cpuset.cpus.effective`
//!   on v2, `cpuset.effective_cpus` or `cpuset.cpus` on v1) and the CFS quota
//!   rounded up (`ceil(quota / period)`, the smallest along the path; v2
//!   `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), and at least 1.
//!   The scheduler affinity mask (`taskset`) is not consulted.
//! - It is cheap: a few small reads, each capped in size (mountinfo is read a
//!   line at a time, at most 1 MiB), and a walk bounded to 64 levels.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// What templates see as `container.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The memory limit in bytes, else the machine's memory.
    pub memory_bytes: u64,
    /// True when a cgroup memory limit is set.
    pub memory_limited: bool,
    /// Usable CPUs, a whole number of at least 1.
    pub cpus: u64,
}

/// A file the facts need could not be read: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The file, as an absolute path.
    pub file: String,
    /// Why, the OS way, or what was wrong with its text.
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read {}: {} (are /proc and /sys mounted?)",
            self.file, self.reason
        )
    }
}

const MIB: u64 = 1024 * 1024;
/// v1 writes "no limit" as `LONG_MAX` rounded down to a page; any limit from
/// 2^62 up is taken as none.
const V1_NO_LIMIT_FROM: u64 = 1 << 62;
/// The most read from a single-value file (a limit, a CPU list).
const VALUE_CAP: u64 = 64 * 1024;
/// The most read from `/proc/self/cgroup`.
const CGROUP_LIST_CAP: u64 = 64 * 1024;
/// The most read from `/proc/self/mountinfo`, which is long on busy hosts.
const MOUNTINFO_CAP: u64 = 1024 * 1024;
/// The most read from `/proc/meminfo` (`MemTotal` is its first line).
const MEMINFO_CAP: u64 = 16 * 1024;
/// The deepest cgroup walk, from the process's cgroup up to the mount root.
const MAX_DEPTH: usize = 64;

impl Facts {
    /// This process's container facts, read from "/".
    ///
    /// Fails only when the machine's memory or CPU list cannot be read:
    /// see the module documentation.
    pub fn detect() -> Result<Facts, Unreadable> {
        Facts::detect_under(Path::new("/"))
    }

    /// The same, with every path (`/proc/self/cgroup`, `/proc/self/mountinfo`,
    /// cgroup files, `/proc/meminfo`, `/sys/devices/system/cpu/online`) read
    /// under `root`, for tests. Errors name the file as `detect` would.
    pub fn detect_under(root: &Path) -> Result<Facts, Unreadable> {
        let cgroups = Cgroups::read(root);
        let machine_memory = mem_total(root)?;
        let limit = cgroups.memory_limit();
        let memory_bytes = limit.map_or(machine_memory, |limit| limit.min(machine_memory));
        let online = online_cpus(root)?;
        let cpus = [Some(online), cgroups.cpuset_len(), cgroups.quota_cpus()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(1)
            .max(1);
        Ok(Facts {
            memory_bytes,
            memory_limited: limit.is_some(),
            cpus,
        })
    }

    /// The memory figure in whole MiB, rounded down.
    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes / MIB
    }
}

/// The hierarchies this process belongs to, as far as they could be found.
struct Cgroups {
    memory: Option<Place>,
    cpu: Option<Place>,
    cpuset: Option<Place>,
}

/// Which files to read for one controller: its version and the directories.
struct Place {
    v2: bool,
    /// The process's cgroup directory.
    leaf: PathBuf,
    /// The mount point: the walk up from `leaf` stops here.
    top: PathBuf,
}

impl Place {
    /// The process's cgroup, then each parent up to the mount root.
    fn levels(&self) -> impl Iterator<Item = &Path> {
        self.leaf
            .ancestors()
            .take_while(|dir| dir.starts_with(&self.top))
            .take(MAX_DEPTH)
    }
}

/// One line of `/proc/self/cgroup`.
struct Membership {
    v2: bool,
    controllers: String,
    path: String,
}

/// One cgroup mount from `/proc/self/mountinfo`.
struct Mount {
    v2: bool,
    root: String,
    point: String,
    options: String,
}

impl Cgroups {
    fn read(root: &Path) -> Cgroups {
        let memberships = read_memberships(root);
        let mounts = read_mounts(root);
        let find = |controller: &str| locate(root, &memberships, &mounts, controller);
        Cgroups {
            memory: find("memory"),
            cpu: find("cpu"),
            cpuset: find("cpuset"),
        }
    }

    /// The smallest memory limit along the path, if any is set.
    fn memory_limit(&self) -> Option<u64> {
        let place = self.memory.as_ref()?;
        let (file, parse): (&str, fn(&str) -> Option<u64>) = if place.v2 {
            ("memory.max", parse_v2_memory)
        } else {
            ("memory.limit_in_bytes", parse_v1_memory)
        };
        place
            .levels()
            .filter_map(|dir| read_value(&dir.join(file)).and_then(|text| parse(&text)))
            .min()
    }

    /// The quota as whole CPUs rounded up, the smallest along the path.
    fn quota_cpus(&self) -> Option<u64> {
        let place = self.cpu.as_ref()?;
        place
            .levels()
            .filter_map(|dir| {
                if place.v2 {
                    parse_v2_cpu_max(&read_value(&dir.join("cpu.max"))?)
                } else {
                    let quota = read_value(&dir.join("cpu.cfs_quota_us"))?;
                    let period = read_value(&dir.join("cpu.cfs_period_us"))?;
                    quota_to_cpus(quota.trim(), period.trim())
                }
            })
            .min()
    }

    /// How many CPUs the nearest non-empty effective cpuset lists.
    fn cpuset_len(&self) -> Option<u64> {
        let place = self.cpuset.as_ref()?;
        let files: &[&str] = if place.v2 {
            &["cpuset.cpus.effective"]
        } else {
            &["cpuset.effective_cpus", "cpuset.cpus"]
        };
        place.levels().find_map(|dir| {
            files
                .iter()
                .find_map(|file| cpu_list_len(&read_value(&dir.join(file))?))
        })
    }
}

/// Where `controller`'s files are for this process: v1 if that controller has
/// its own mounted hierarchy, else v2 if the v2 mount offers it.
fn locate(
    root: &Path,
    memberships: &[Membership],
    mounts: &[Mount],
    controller: &str,
) -> Option<Place> {
    let has = |list: &str| list.split(',').any(|item| item == controller);
    let v1 = memberships
        .iter()
        .find(|m| !m.v2 && has(&m.controllers))
        .and_then(|m| {
            let candidates = mounts
                .iter()
                .filter(|mount| !mount.v2 && has(&mount.options));
            place_in(root, false, &m.path, candidates)
        });
    if v1.is_some() {
        return v1;
    }
    let membership = memberships.iter().find(|m| m.v2)?;
    let place = place_in(root, true, &membership.path, mounts.iter().filter(|m| m.v2))?;
    let offered = read_value(&place.top.join("cgroup.controllers"))?;
    offered
        .split_whitespace()
        .any(|item| item == controller)
        .then_some(place)
}

/// The process's directory in the hierarchy mounted by `candidates`: the
/// mount whose root is the longest prefix of `path` wins, else the first.
fn place_in<'a>(
    root: &Path,
    v2: bool,
    path: &str,
    candidates: impl Iterator<Item = &'a Mount>,
) -> Option<Place> {
    let path = Path::new(path);
    let mut best: Option<(&Mount, Option<PathBuf>)> = None;
    for mount in candidates {
        let relative = path
            .strip_prefix(&mount.root)
            .ok()
            .filter(|rel| rel.components().all(|c| matches!(c, Component::Normal(_))))
            .map(Path::to_path_buf);
        let better = match &best {
            None => true,
            Some((chosen, chosen_rel)) => {
                relative.is_some() && (chosen_rel.is_none() || mount.root.len() > chosen.root.len())
            }
        };
        if better {
            best = Some((mount, relative));
        }
    }
    let (mount, relative) = best?;
    let top = under(root, &mount.point);
    // A path from another cgroup namespace, or one the mount does not
    // contain: keep its tail that exists under the mount point, else the
    // mount point itself.
    // A path with `..` lies outside this namespace's view: only the mount
    // point is left.
    let relative = relative.unwrap_or_else(|| {
        if path.components().any(|c| c == Component::ParentDir) {
            PathBuf::new()
        } else {
            path.components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect()
        }
    });
    let leaf = tails(&relative)
        .map(|tail| top.join(tail))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| top.clone());
    Some(Place { v2, leaf, top })
}

/// `a/b/c`, then `b/c`, then `c`.
fn tails(path: &Path) -> impl Iterator<Item = &Path> {
    let mut components = path.components();
    std::iter::from_fn(move || {
        let tail = components.as_path();
        components.next()?;
        Some(tail)
    })
    .take(MAX_DEPTH)
}

fn read_memberships(root: &Path) -> Vec<Membership> {
    let mut memberships = Vec::new();
    let _ = for_each_line(&under(root, "/proc/self/cgroup"), CGROUP_LIST_CAP, |line| {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return;
        };
        if !path.starts_with('/') {
            return;
        }
        memberships.push(Membership {
            v2: id == "0" && controllers.is_empty(),
            controllers: controllers.to_owned(),
            path: path.to_owned(),
        });
    });
    memberships
}

fn read_mounts(root: &Path) -> Vec<Mount> {
    let mut mounts = Vec::new();
    let _ = for_each_line(
        &under(root, "/proc/self/mountinfo"),
        MOUNTINFO_CAP,
        |line| {
            // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            // Paths escape spaces as \040, so " - " only ever separates.
            let Some((head, tail)) = line.split_once(" - ") else {
                return;
            };
            let mut tail = tail.split(' ');
            let v2 = match tail.next() {
                Some("cgroup2") => true,
                Some("cgroup") => false,
                _ => return,
            };
            let Some(options) = tail.nth(1) else {
                return;
            };
            let mut head = head.split(' ').skip(3);
            let (Some(mount_root), Some(point)) = (head.next(), head.next()) else {
                return;
            };
            mounts.push(Mount {
                v2,
                root: unescape(mount_root),
                point: unescape(point),
                options: options.to_owned(),
            });
        },
    );
    mounts
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for `\`).
fn unescape(field: &str) -> String {
    String::from_utf8_lossy(&unescape_bytes(field.as_bytes())).into_owned()
}

/// [`unescape`] on bytes (mount tables: `/proc/self/mounts` too).
pub(crate) fn unescape_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal.map(|d| {
            (u32::from(d[0] - b'0') << 6) | (u32::from(d[1] - b'0') << 3) | u32::from(d[2] - b'0')
        }) {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

const MEMINFO: &str = "/proc/meminfo";
const CPU_ONLINE: &str = "/sys/devices/system/cpu/online";

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn mem_total(root: &Path) -> Result<u64, Unreadable> {
    let mut total = None;
    let read = for_each_line(&under(root, MEMINFO), MEMINFO_CAP, |line| {
        if total.is_some() {
            return;
        }
        if let Some(rest) = line.strip_prefix("MemTotal:") {
            let mut words = rest.split_whitespace();
            total = Some(
                match (words.next(), words.next()) {
                    (Some(kib), Some("kB")) => {
                        kib.parse::<u64>().ok().and_then(|k| k.checked_mul(1024))
                    }
                    _ => None,
                }
                .filter(|bytes| *bytes > 0),
            );
        }
    });
    let unreadable = |reason: &str| Unreadable {
        file: MEMINFO.into(),
        reason: reason.into(),
    };
    read.map_err(|e| unreadable(&e))?;
    match total {
        Some(Some(bytes)) => Ok(bytes),
        Some(None) => Err(unreadable("its MemTotal line is not a number of kB")),
        None => Err(unreadable("it has no MemTotal line")),
    }
}

/// How many CPUs `/sys/devices/system/cpu/online` lists.
fn online_cpus(root: &Path) -> Result<u64, Unreadable> {
    let unreadable = |reason: String| Unreadable {
        file: CPU_ONLINE.into(),
        reason,
    };
    let mut bytes = Vec::new();
    File::open(under(root, CPU_ONLINE))
        .and_then(|f| f.take(VALUE_CAP).read_to_end(&mut bytes))
        .map_err(|e| unreadable(crate::exit::reason(&e)))?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(cpu_list_len)
        .ok_or_else(|| unreadable("it is not a CPU list such as 0-3".into()))
}

/// v1 `memory.limit_in_bytes`: a number, huge for none.
fn parse_v1_memory(text: &str) -> Option<u64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|limit| *limit < V1_NO_LIMIT_FROM)
}

/// v2 `memory.max`: a number, or `max` for none.
fn parse_v2_memory(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok()
}

/// v2 `cpu.max`: `QUOTA PERIOD`, with `max` as the quota for none.
fn parse_v2_cpu_max(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    let quota = words.next()?;
    let period = words.next().unwrap_or("100000");
    quota_to_cpus(quota, period)
}

/// `ceil(quota / period)` for a positive quota and period; none otherwise
/// (v1 writes -1, v2 `max`).
fn quota_to_cpus(quota: &str, period: &str) -> Option<u64> {
    let quota = quota.parse::<u64>().ok().filter(|q| *q > 0)?;
    let period = period.parse::<u64>().ok().filter(|p| *p > 0)?;
    Some(quota.div_ceil(period))
}

/// How many CPUs a kernel CPU list (`0-3,6`) names; none if empty or
/// malformed.
fn cpu_list_len(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.split(',').try_fold(0u64, |count, item| {
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (first.parse::<u64>().ok()?, last.parse::<u64>().ok()?),
            None => {
                let cpu = item.parse::<u64>().ok()?;
                (cpu, cpu)
            }
        };
        let span = last.checked_sub(first)?.checked_add(1)?;
        count.checked_add(span)
    })
}

/// `path` (absolute) under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A small file's text, or none if unreadable, not UTF-8 or over the cap.
fn read_value(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(VALUE_CAP + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > VALUE_CAP {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// Calls `each` with every line of `path` (without its newline) within the
/// first `cap` bytes; a line cut off by the cap, or not UTF-8, is skipped.
/// `Err` (the OS's reason) when the file cannot be opened.
fn for_each_line(path: &Path, cap: u64, mut each: impl FnMut(&str)) -> Result<(), String> {
    let file = File::open(path).map_err(|e| crate::exit::reason(&e))?;
    let mut reader = BufReader::new(file.take(cap));
    let mut line = Vec::new();
    let mut total = 0u64;
    loop {
        line.clear();
        let Ok(read) = reader.read_until(b'\n', &mut line) else {
            return Ok(());
        };
        if read == 0 {
            return Ok(());
        }
        total += read as u64;
        let complete = line.last() == Some(&b'\n');
        if !complete && total >= cap {
            return Ok(());
        }
        if complete {
            line.pop();
        }
        if let Ok(text) = std::str::from_utf8(&line) {
            each(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const GIB: u64 = 1024 * MIB;
    const V1_NONE: &str = "9223372036854771712\n";

    /// A fake root in the temporary directory, removed on drop.
    struct Root(PathBuf);

    impl Root {
        /// A machine with 8 GiB and CPUs 0-7, and the given cgroup files.
        fn new(cgroup: &str, mountinfo: &str) -> Root {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "envinit-container-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let root = Root(dir);
            root.write(
                "/proc/meminfo",
                "MemTotal:        8388608 kB\nMemFree:         1000 kB\n",
            );
            root.write("/sys/devices/system/cpu/online", "0-7\n");
            root.write("/proc/self/cgroup", cgroup);
            root.write("/proc/self/mountinfo", mountinfo);
            root
        }

        fn write(&self, path: &str, text: &str) {
            self.write_bytes(path, text.as_bytes());
        }

        fn write_bytes(&self, path: &str, bytes: &[u8]) {
            let path = under(&self.0, path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, bytes).unwrap();
        }

        fn remove(&self, path: &str) {
            std::fs::remove_file(under(&self.0, path)).unwrap();
        }

        fn error(&self) -> Unreadable {
            Facts::detect_under(&self.0).unwrap_err()
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const V1_CGROUP: &str = "\
12:pids:/app
4:memory:/app
3:cpuset:/app
2:cpu,cpuacct:/app
1:name=systemd:/app
0::/app
";

    const V1_MOUNTS: &str = "\
22 1 0:20 / /proc rw,nosuid - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:8 - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
";

    /// This machine's layout: v1 controllers beside a v2 mount.
    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V2_MOUNTS: &str = "\
22 1 0:20 / /proc rw,nosuid - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const V2_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

    /// What a file of the fake machine holds.
    #[derive(Clone, Copy)]
    enum Text {
        Is(&'static str),
        Bytes(&'static [u8]),
        /// Made when the case runs (too large to write out).
        Made(fn() -> String),
    }

    impl Text {
        fn bytes(self) -> Vec<u8> {
            match self {
                Text::Is(text) => text.as_bytes().to_vec(),
                Text::Bytes(bytes) => bytes.to_vec(),
                Text::Made(make) => make().into_bytes(),
            }
        }
    }

    /// What detection gives.
    enum Want {
        Facts(Facts),
        Error {
            file: &'static str,
            reason: &'static str,
        },
    }

    /// One detection: a machine of 8 GiB and CPUs 0-7 (unless a file below
    /// says otherwise) whose /proc/self/cgroup and mountinfo are `cgroup`
    /// and `mounts`, with `files` written (`None`: removed), and what
    /// [`Facts::detect_under`] gives for it.
    struct Case {
        name: &'static str,
        cgroup: Text,
        mounts: Text,
        files: &'static [(&'static str, Option<Text>)],
        want: Want,
    }

    const fn facts(memory_bytes: u64, memory_limited: bool, cpus: u64) -> Want {
        Want::Facts(Facts {
            memory_bytes,
            memory_limited,
            cpus,
        })
    }

    use Text::Is;

    /// Unlimited: the machine's 8 GiB and 8 CPUs.
    const MACHINE: Want = facts(8 * GIB, false, 8);

    const CASES: &[Case] = &[
        Case {
            name: "v1 limits",
            cgroup: Is(V1_CGROUP),
            mounts: Is(V1_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    Some(Is(V1_NONE)),
                ),
                (
                    "/sys/fs/cgroup/memory/app/memory.limit_in_bytes",
                    Some(Is("268435456\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us",
                    Some(Is("150000\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us",
                    Some(Is("100000\n")),
                ),
                (
                    "/sys/fs/cgroup/cpuset/app/cpuset.effective_cpus",
                    Some(Is("0-7\n")),
                ),
            ],
            want: facts(256 * MIB, true, 2),
        },
        Case {
            name: "v1 cpuset falls back to cpuset.cpus",
            cgroup: Is(V1_CGROUP),
            mounts: Is(V1_MOUNTS),
            files: &[("/sys/fs/cgroup/cpuset/app/cpuset.cpus", Some(Is("0-3,6\n")))],
            want: facts(8 * GIB, false, 5),
        },
        Case {
            name: "v1 no limit",
            cgroup: Is(V1_CGROUP),
            mounts: Is(V1_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    Some(Is(V1_NONE)),
                ),
                (
                    "/sys/fs/cgroup/memory/app/memory.limit_in_bytes",
                    Some(Is(V1_NONE)),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us",
                    Some(Is("-1\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us",
                    Some(Is("100000\n")),
                ),
            ],
            want: MACHINE,
        },
        Case {
            // LONG_MAX rounded down to a 64 KiB page.
            name: "v1 no limit on 64k pages",
            cgroup: Is(V1_CGROUP),
            mounts: Is(V1_MOUNTS),
            files: &[(
                "/sys/fs/cgroup/memory/app/memory.limit_in_bytes",
                Some(Is("9223372036854710272\n")),
            )],
            want: MACHINE,
        },
        Case {
            name: "v2 limits",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/cpuset.cpus.effective", Some(Is("0-7\n"))),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("536870912\n"))),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("max 100000\n"))),
                (
                    "/sys/fs/cgroup/app/cpuset.cpus.effective",
                    Some(Is("0-3,6\n")),
                ),
            ],
            want: facts(512 * MIB, true, 5),
        },
        Case {
            name: "v2 no limit",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("max\n"))),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("max 100000\n"))),
            ],
            want: MACHINE,
        },
        Case {
            name: "v2 without the controllers is ignored",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                ("/sys/fs/cgroup/cgroup.controllers", Some(Is("pids\n"))),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("536870912\n"))),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("100000 100000\n"))),
            ],
            want: MACHINE,
        },
        Case {
            name: "hybrid prefers v1",
            cgroup: Is("4:memory:/app\n3:cpuset:/\n1:cpu:/app\n0::/app\n"),
            mounts: Is(HYBRID_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/unified/cgroup.controllers",
                    Some(Is("hugetlb\n")),
                ),
                // v2 files that must not be read: v2 has no memory controller here.
                (
                    "/sys/fs/cgroup/unified/app/memory.max",
                    Some(Is("1048576\n")),
                ),
                (
                    "/sys/fs/cgroup/unified/app/cpu.max",
                    Some(Is("100000 100000\n")),
                ),
                (
                    "/sys/fs/cgroup/memory/app/memory.limit_in_bytes",
                    Some(Is("268435456\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu/app/cpu.cfs_quota_us",
                    Some(Is("300000\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu/app/cpu.cfs_period_us",
                    Some(Is("100000\n")),
                ),
                (
                    "/sys/fs/cgroup/cpuset/cpuset.effective_cpus",
                    Some(Is("0-1\n")),
                ),
            ],
            want: facts(256 * MIB, true, 2),
        },
        Case {
            // v1 cpu only; memory is a v2 controller.
            name: "hybrid uses v2 for what v1 lacks",
            cgroup: Is("1:cpu:/app\n0::/app\n"),
            mounts: Is("\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"),
            files: &[
                (
                    "/sys/fs/cgroup/unified/cgroup.controllers",
                    Some(Is("memory\n")),
                ),
                (
                    "/sys/fs/cgroup/unified/app/memory.max",
                    Some(Is("1073741824\n")),
                ),
                (
                    "/sys/fs/cgroup/unified/app/cpu.max",
                    Some(Is("100000 100000\n")),
                ),
                ("/sys/fs/cgroup/cpu/app/cpu.cfs_quota_us", Some(Is("-1\n"))),
                (
                    "/sys/fs/cgroup/cpu/app/cpu.cfs_period_us",
                    Some(Is("100000\n")),
                ),
            ],
            want: facts(GIB, true, 8),
        },
        Case {
            name: "a nested path takes the smallest limit on the way up",
            cgroup: Is("0::/a/b/c\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/a/memory.max", Some(Is("134217728\n"))),
                ("/sys/fs/cgroup/a/cpu.max", Some(Is("max 100000\n"))),
                ("/sys/fs/cgroup/a/b/memory.max", Some(Is("max\n"))),
                ("/sys/fs/cgroup/a/b/cpu.max", Some(Is("250000 100000\n"))),
                ("/sys/fs/cgroup/a/b/c/memory.max", Some(Is("268435456\n"))),
                ("/sys/fs/cgroup/a/b/c/cpu.max", Some(Is("max 100000\n"))),
            ],
            want: facts(128 * MIB, true, 3),
        },
        Case {
            name: "v1 nested path",
            cgroup: Is("4:memory:/kubepods/pod1/ctr\n"),
            mounts: Is(V1_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    Some(Is(V1_NONE)),
                ),
                (
                    "/sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes",
                    Some(Is("104857600\n")),
                ),
                (
                    "/sys/fs/cgroup/memory/kubepods/pod1/ctr/memory.limit_in_bytes",
                    Some(Is(V1_NONE)),
                ),
            ],
            want: facts(100 * MIB, true, 8),
        },
        Case {
            name: "a limit above the machine is capped",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("107374182400\n"))),
            ],
            want: facts(8 * GIB, true, 8),
        },
        Case {
            // Inside a container with a cgroup namespace: everything is "/".
            name: "cgroup namespace root",
            cgroup: Is("0::/\n"),
            mounts: Is(
                "700 690 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n",
            ),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is("cpuset cpu memory pids\n")),
                ),
                ("/sys/fs/cgroup/memory.max", Some(Is("268435456\n"))),
                ("/sys/fs/cgroup/cpu.max", Some(Is("150000 100000\n"))),
                ("/sys/fs/cgroup/cpuset.cpus.effective", Some(Is("0-7\n"))),
            ],
            want: facts(256 * MIB, true, 2),
        },
        Case {
            name: "v1 cgroup namespace root",
            cgroup: Is("11:memory:/\n3:cpu,cpuacct:/\n"),
            mounts: Is(V1_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    Some(Is("268435456\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
                    Some(Is("50000\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us",
                    Some(Is("100000\n")),
                ),
            ],
            want: facts(256 * MIB, true, 1),
        },
        Case {
            // Docker without a cgroup namespace: the container's own cgroup
            // is bind-mounted, and /proc/self/cgroup shows the host's path.
            name: "the mount root is a prefix of the path",
            cgroup: Is("4:memory:/docker/abc/worker\n"),
            mounts: Is(
                "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,relatime - cgroup cgroup rw,memory\n",
            ),
            files: &[
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    Some(Is("268435456\n")),
                ),
                (
                    "/sys/fs/cgroup/memory/worker/memory.limit_in_bytes",
                    Some(Is("536870912\n")),
                ),
            ],
            want: facts(256 * MIB, true, 8),
        },
        Case {
            name: "the longest matching mount root wins",
            cgroup: Is("4:memory:/docker/abc\n"),
            mounts: Is("\
35 31 0:32 / /host/memory rw - cgroup cgroup rw,memory
36 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
37 31 0:32 /other /elsewhere rw - cgroup cgroup rw,memory
"),
            files: &[
                (
                    "/host/memory/docker/abc/memory.limit_in_bytes",
                    Some(Is("1048576\n")),
                ),
                (
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    Some(Is("268435456\n")),
                ),
                // The walk stops at the chosen mount point.
                (
                    "/sys/fs/cgroup/memory.limit_in_bytes",
                    Some(Is("1048576\n")),
                ),
            ],
            want: facts(256 * MIB, true, 8),
        },
        Case {
            // The mount root is "/" but the path is the host's: keep the
            // tail that exists, else the mount point.
            name: "a path from another namespace falls back to the mount point",
            cgroup: Is("0::/system.slice/docker-abc.scope\n"),
            mounts: Is("700 690 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            files: &[
                ("/sys/fs/cgroup/cgroup.controllers", Some(Is("memory\n"))),
                ("/sys/fs/cgroup/memory.max", Some(Is("268435456\n"))),
            ],
            want: facts(256 * MIB, true, 8),
        },
        Case {
            name: "a path from another namespace takes the tail that exists",
            cgroup: Is("0::/system.slice/docker-abc.scope\n"),
            mounts: Is("700 690 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            files: &[
                ("/sys/fs/cgroup/cgroup.controllers", Some(Is("memory\n"))),
                ("/sys/fs/cgroup/memory.max", Some(Is("268435456\n"))),
                (
                    "/sys/fs/cgroup/docker-abc.scope/memory.max",
                    Some(Is("134217728\n")),
                ),
            ],
            want: facts(128 * MIB, true, 8),
        },
        Case {
            name: "a mount root that is not a prefix uses the mount point",
            cgroup: Is("4:memory:/elsewhere\n"),
            mounts: Is(
                "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            ),
            files: &[(
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                Some(Is("268435456\n")),
            )],
            want: facts(256 * MIB, true, 8),
        },
        Case {
            name: "a path above the namespace root uses the mount point",
            cgroup: Is("0::/../../other/x\n"),
            mounts: Is("700 690 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            files: &[
                ("/sys/fs/cgroup/cgroup.controllers", Some(Is("memory\n"))),
                ("/sys/fs/cgroup/memory.max", Some(Is("268435456\n"))),
                ("/sys/fs/cgroup/x/memory.max", Some(Is("1048576\n"))),
            ],
            want: facts(256 * MIB, true, 8),
        },
        Case {
            name: "an escaped mount point",
            cgroup: Is("0::/app\n"),
            mounts: Is("30 23 0:26 / /cg\\040roups rw - cgroup2 cgroup2 rw\n"),
            files: &[
                ("/cg roups/cgroup.controllers", Some(Is("memory\n"))),
                ("/cg roups/app/memory.max", Some(Is("268435456\n"))),
            ],
            want: facts(256 * MIB, true, 8),
        },
        Case {
            name: "a quota rounds up",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("150000 100000\n"))),
            ],
            want: facts(8 * GIB, false, 2),
        },
        Case {
            name: "a quota below one CPU gives one",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("10000 100000\n"))),
            ],
            want: facts(8 * GIB, false, 1),
        },
        Case {
            name: "online CPUs are the ceiling",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                ("/sys/devices/system/cpu/online", Some(Is("0-1\n"))),
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("800000 100000\n"))),
                (
                    "/sys/fs/cgroup/app/cpuset.cpus.effective",
                    Some(Is("0-3\n")),
                ),
            ],
            want: facts(8 * GIB, false, 2),
        },
        Case {
            name: "malformed v2 files fall back to the machine",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("lots\n"))),
                ("/sys/fs/cgroup/app/cpu.max", Some(Is("some 100000\n"))),
                (
                    "/sys/fs/cgroup/app/cpuset.cpus.effective",
                    Some(Is("x-y\n")),
                ),
            ],
            want: MACHINE,
        },
        Case {
            name: "malformed v1 files fall back to the machine",
            cgroup: Is(V1_CGROUP),
            mounts: Is(V1_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/memory/app/memory.limit_in_bytes",
                    Some(Is("-1\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_quota_us",
                    Some(Is("150000\n")),
                ),
                (
                    "/sys/fs/cgroup/cpu,cpuacct/app/cpu.cfs_period_us",
                    Some(Is("\n")),
                ),
                (
                    "/sys/fs/cgroup/cpuset/app/cpuset.effective_cpus",
                    Some(Is("\n")),
                ),
            ],
            want: MACHINE,
        },
        Case {
            name: "malformed /proc files fall back to the machine",
            cgroup: Is(GARBAGE),
            mounts: Is(GARBAGE),
            files: &[],
            want: MACHINE,
        },
        Case {
            name: "a mountinfo that is not UTF-8 falls back to the machine",
            cgroup: Is(GARBAGE),
            mounts: Text::Bytes(&[0xff, 0xfe, b'\n']),
            files: &[],
            want: MACHINE,
        },
        Case {
            name: "an unreadable /proc/meminfo is an error naming it",
            cgroup: Is(""),
            mounts: Is(""),
            files: &[("/proc/meminfo", None)],
            want: Want::Error {
                file: "/proc/meminfo",
                reason: "No such file or directory",
            },
        },
        Case {
            name: "an unreadable CPU list is an error naming it",
            cgroup: Is(""),
            mounts: Is(""),
            files: &[
                ("/proc/meminfo", Some(Is("MemTotal: 1024 kB\n"))),
                ("/sys/devices/system/cpu/online", None),
            ],
            want: Want::Error {
                file: "/sys/devices/system/cpu/online",
                reason: "No such file or directory",
            },
        },
        Case {
            // Without the cgroup files the machine's figures remain.
            name: "without the cgroup files the machine's figures remain",
            cgroup: Is(""),
            mounts: Is(""),
            files: &[
                ("/proc/meminfo", Some(Is("MemTotal: 1024 kB\n"))),
                ("/sys/devices/system/cpu/online", Some(Is("0-1\n"))),
                ("/proc/self/cgroup", None),
                ("/proc/self/mountinfo", None),
            ],
            want: facts(1 << 20, false, 2),
        },
        Case {
            name: "a MemTotal that is not a number is an error",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[("/proc/meminfo", Some(Is("MemTotal: many kB\n")))],
            want: Want::Error {
                file: "/proc/meminfo",
                reason: "its MemTotal line is not a number of kB",
            },
        },
        Case {
            name: "no MemTotal line is an error",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[("/proc/meminfo", Some(Is("MemFree: 1 kB\n")))],
            want: Want::Error {
                file: "/proc/meminfo",
                reason: "it has no MemTotal line",
            },
        },
        Case {
            name: "a malformed CPU list is an error",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                ("/proc/meminfo", Some(Is("MemTotal: 1024 kB\n"))),
                ("/sys/devices/system/cpu/online", Some(Is("zero\n"))),
            ],
            want: Want::Error {
                file: "/sys/devices/system/cpu/online",
                reason: "it is not a CPU list such as 0-3",
            },
        },
        Case {
            name: "an oversized value file is ignored",
            cgroup: Is("0::/app\n"),
            mounts: Is(V2_MOUNTS),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                (
                    "/sys/fs/cgroup/app/memory.max",
                    Some(Text::Made(|| {
                        format!("{}1048576\n", " ".repeat(VALUE_CAP as usize))
                    })),
                ),
            ],
            want: MACHINE,
        },
        Case {
            // A busy host: the cgroup mount comes after 1 MiB of other mounts.
            name: "mountinfo is read only up to its cap",
            cgroup: Is("0::/app\n"),
            mounts: Text::Made(|| {
                let filler = "99 1 0:99 / /mnt/x rw - tmpfs tmpfs rw\n";
                let mut mounts = filler.repeat(MOUNTINFO_CAP as usize / filler.len() + 1);
                mounts.push_str("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
                mounts
            }),
            files: &[
                (
                    "/sys/fs/cgroup/cgroup.controllers",
                    Some(Is(V2_CONTROLLERS)),
                ),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("268435456\n"))),
            ],
            want: MACHINE,
        },
        Case {
            name: "a last line without a newline counts",
            cgroup: Is("0::/app"),
            mounts: Is("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"),
            files: &[
                ("/sys/fs/cgroup/cgroup.controllers", Some(Is("memory"))),
                ("/sys/fs/cgroup/app/memory.max", Some(Is("268435456"))),
            ],
            want: facts(256 * MIB, true, 8),
        },
    ];

    /// Lines that are no cgroup or mount line at all.
    const GARBAGE: &str = "\0\u{1}:::\nnot a mount line\n1 2 3\n- - -\n\\\\\\777\n";

    /// Every case of [`CASES`]; a failure names each case that failed.
    #[test]
    fn detection_cases() {
        let mut failed = Vec::new();
        for case in CASES {
            let root = Root::new("", "");
            root.write_bytes("/proc/self/cgroup", &case.cgroup.bytes());
            root.write_bytes("/proc/self/mountinfo", &case.mounts.bytes());
            for (path, text) in case.files {
                match text {
                    Some(text) => root.write_bytes(path, &text.bytes()),
                    None => root.remove(path),
                }
            }
            let got = Facts::detect_under(&root.0);
            let ok = match (&case.want, &got) {
                (Want::Facts(want), Ok(got)) => want == got,
                (Want::Error { file, reason }, Err(got)) => {
                    got.file == *file && got.reason == *reason
                }
                _ => false,
            };
            if !ok {
                let want = match &case.want {
                    Want::Facts(facts) => format!("{facts:?}"),
                    Want::Error { file, reason } => format!("{file}: {reason}"),
                };
                failed.push(format!("{}: want {want}, got {got:?}", case.name));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    /// The message of an unreadable file names it and says what to check.
    #[test]
    fn unreadable_says_the_file_the_reason_and_what_to_check() {
        let root = Root::new("", "");
        root.remove("/proc/meminfo");
        assert_eq!(
            root.error().to_string(),
            "cannot read /proc/meminfo: No such file or directory (are /proc and /sys mounted?)"
        );
    }

    #[test]
    fn quota_rounds_up() {
        assert_eq!(quota_to_cpus("150000", "100000"), Some(2));
        assert_eq!(quota_to_cpus("100000", "100000"), Some(1));
        assert_eq!(quota_to_cpus("100001", "100000"), Some(2));
        assert_eq!(quota_to_cpus("50000", "100000"), Some(1));
        assert_eq!(quota_to_cpus("-1", "100000"), None);
        assert_eq!(quota_to_cpus("0", "100000"), None);
        assert_eq!(quota_to_cpus("150000", "0"), None);
        assert_eq!(parse_v2_cpu_max("250000 100000\n"), Some(3));
        assert_eq!(parse_v2_cpu_max("max 100000\n"), None);
        assert_eq!(parse_v2_cpu_max("200000\n"), Some(2));
        assert_eq!(parse_v2_cpu_max(""), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list_len("0-3,6\n"), Some(5));
        assert_eq!(cpu_list_len("0"), Some(1));
        assert_eq!(cpu_list_len("0-1"), Some(2));
        assert_eq!(cpu_list_len("1,3,5-7"), Some(5));
        assert_eq!(cpu_list_len("\n"), None);
        assert_eq!(cpu_list_len("3-1"), None);
        assert_eq!(cpu_list_len("0-"), None);
        assert_eq!(cpu_list_len("a"), None);
        assert_eq!(cpu_list_len("0,,1"), None);
        assert_eq!(cpu_list_len("0-18446744073709551615"), None);
    }

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/a\\04"), "/a\\04");
        assert_eq!(unescape("/a\\999"), "/a\\999");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn memory_mib_rounds_down() {
        let facts = Facts {
            memory_bytes: 256 * MIB + MIB - 1,
            memory_limited: true,
            cpus: 1,
        };
        assert_eq!(facts.memory_mib(), 256);
    }

    #[test]
    fn detects_this_machine() {
        let facts = Facts::detect().unwrap();
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
    }
}
