//! Container facts against a real cgroup: a fresh cgroup with a 256 MiB
//! memory limit and, where the machine allows, a CPU quota of 1.5 CPUs
//! (150000/100000, so 2 CPUs rounded up) is made for each test, a process is
//! moved into it, and what it detects is checked. And a pids cgroup that
//! makes envinit's fork fail: exit 71.
//!
//! Needs root and a writable cgroup hierarchy: v1 `memory` (and `cpu`) under
//! /sys/fs/cgroup, else cgroup v2 with the memory controller. Without them the
//! tests print why and skip, except when `CI=true`, where that is a failure;
//! a CPU quota the machine will not set is a `SKIP CASE` (a failure under
//! CI): the CPU count is then only checked to be at least 1.
//!
//! The cgroups are made below this process's own cgroup where that is
//! possible (v1), so a harness that accounts for its processes by cgroup
//! still sees them; they are removed on drop, even when a test fails.
//! No test sleeps: each child is waited for with a deadline.
// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Finished;

use envinit::container::Facts;

const LIMIT_MIB: u64 = 256;
const QUOTA_US: u64 = 150_000;
const PERIOD_US: u64 = 100_000;
/// How long a child may take before it is killed and the test fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// Set in the environment of this test binary when it is re-run as a probe.
const PROBE: &str = "ENVINIT_CONTAINER_PROBE";

/// A cgroup made for one test; its directories are removed on drop.
struct TestCgroup {
    /// `cgroup.procs` files to write the process's pid into.
    procs: Vec<PathBuf>,
    /// Directories made, removed in reverse order.
    made: Vec<PathBuf>,
    /// Whether the CPU quota could be set.
    quota_set: bool,
    /// Which hierarchy, for messages.
    kind: &'static str,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            // The child has been reaped, so the cgroup is empty; a failure
            // here is reported but does not hide the test's own result.
            if let Err(error) = fs::remove_dir(dir) {
                eprintln!("could not remove test cgroup {}: {error}", dir.display());
            }
        }
    }
}

fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "envinit-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// This process's cgroup path for a v1 controller, or `0::` for v2.
fn own_cgroup(matches: impl Fn(&str, &str) -> bool) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        matches(id, controllers).then(|| path.trim_start_matches('/').to_owned())
    })
}

fn v1_own_cgroup(controller: &str) -> String {
    own_cgroup(|id, list| id != "0" && list.split(',').any(|c| c == controller)).unwrap_or_default()
}

/// `base/own/name` if this process's own cgroup is visible there, else
/// `base/name`.
fn child_of_own(base: &Path, own: &str, name: &str) -> PathBuf {
    let parent = base.join(own);
    if !own.is_empty() && parent.is_dir() {
        parent.join(name)
    } else {
        base.join(name)
    }
}

fn make_dir(dir: &Path, made: &mut Vec<PathBuf>) -> Result<(), String> {
    fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    made.push(dir.to_path_buf());
    Ok(())
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A fresh cgroup with the memory limit (and the quota where allowed), or
/// why none could be made.
fn make_cgroup() -> Result<TestCgroup, String> {
    let name = unique_name();
    let v1_memory = Path::new("/sys/fs/cgroup/memory");
    if v1_memory.join("memory.limit_in_bytes").exists() {
        make_v1(v1_memory, &name)
    } else {
        make_v2(&name)
    }
}

fn make_v1(memory_base: &Path, name: &str) -> Result<TestCgroup, String> {
    let mut group = TestCgroup {
        procs: Vec::new(),
        made: Vec::new(),
        quota_set: false,
        kind: "cgroup v1",
    };
    let memory = child_of_own(memory_base, &v1_own_cgroup("memory"), name);
    make_dir(&memory, &mut group.made)?;
    write(
        &memory.join("memory.limit_in_bytes"),
        &(LIMIT_MIB * 1024 * 1024).to_string(),
    )?;
    group.procs.push(memory.join("cgroup.procs"));

    // The cpu controller may be co-mounted with cpuacct; a quota is optional.
    let cpu_base = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .into_iter()
        .map(Path::new)
        .find(|base| base.join("cpu.cfs_quota_us").exists());
    if let Some(cpu_base) = cpu_base {
        let cpu = child_of_own(cpu_base, &v1_own_cgroup("cpu"), name);
        if make_dir(&cpu, &mut group.made).is_ok() {
            group.procs.push(cpu.join("cgroup.procs"));
            group.quota_set = write(&cpu.join("cpu.cfs_period_us"), &PERIOD_US.to_string())
                .and_then(|()| write(&cpu.join("cpu.cfs_quota_us"), &QUOTA_US.to_string()))
                .map_err(|why| eprintln!("no CPU quota: {why}"))
                .is_ok();
        }
    }
    Ok(group)
}

/// The cgroup v2 mount point, from mountinfo.
fn v2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        let point = fields.get(4)?;
        (fields.get(dash + 1) == Some(&"cgroup2")).then(|| PathBuf::from(point))
    })
}

fn make_v2(name: &str) -> Result<TestCgroup, String> {
    let base = v2_mount().ok_or("no cgroup v1 memory controller and no cgroup v2 mount")?;
    let controllers = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Err(format!(
            "no cgroup v1 memory controller, and cgroup v2 at {} offers no memory controller",
            base.display()
        ));
    }
    let mut group = TestCgroup {
        procs: Vec::new(),
        made: Vec::new(),
        quota_set: false,
        kind: "cgroup v2",
    };
    // v2 forbids processes in a cgroup that hands controllers to children,
    // so the test cgroup goes right under the mount's root.
    let dir = base.join(name);
    make_dir(&dir, &mut group.made)?;
    if !dir.join("memory.max").exists() {
        write(&base.join("cgroup.subtree_control"), "+memory")?;
    }
    if !dir.join("cpu.max").exists() {
        let _ = write(&base.join("cgroup.subtree_control"), "+cpu");
    }
    write(
        &dir.join("memory.max"),
        &(LIMIT_MIB * 1024 * 1024).to_string(),
    )?;
    group.quota_set = write(&dir.join("cpu.max"), &format!("{QUOTA_US} {PERIOD_US}"))
        .map_err(|why| eprintln!("no CPU quota: {why}"))
        .is_ok();
    group.procs.push(dir.join("cgroup.procs"));
    Ok(group)
}

/// The cgroup, or `None` after printing why the test is skipped; in CI a
/// skip is a failure.
fn cgroup_or_skip() -> Option<TestCgroup> {
    match make_cgroup() {
        Ok(group) => Some(group),
        Err(why) => {
            common::prerequisite("a writable cgroup", Some(why));
            None
        }
    }
}

/// Runs `program args` inside `group` (a shell writes its pid into each
/// `cgroup.procs`, then execs), killing it after the deadline.
fn run_in(group: &TestCgroup, program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Finished {
    let script = r#"n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n - 1)); done
exec "$@""#;
    common::run_for(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(group.procs.len().to_string())
            .args(&group.procs)
            .arg(program)
            .args(args)
            .envs(envs.iter().copied()),
        DEADLINE,
    )
}

/// The CPU count expected inside the test cgroup: the quota's 2, or fewer
/// if fewer CPUs are online.
fn expected_cpus(group: &TestCgroup) -> Option<u64> {
    let online = fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let online: u64 = online
        .trim()
        .split(',')
        .map(|item| match item.split_once('-') {
            Some((a, b)) => b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1,
            None => 1,
        })
        .sum();
    group
        .quota_set
        .then(|| online.min(QUOTA_US.div_ceil(PERIOD_US)))
}

/// `Facts::detect` in a process moved into a real cgroup: this test binary
/// runs itself again there, this test alone, with `PROBE` set, and then
/// prints the facts it detects.
#[test]
fn detect_in_a_real_cgroup() {
    if std::env::var_os(PROBE).is_some() {
        let facts = Facts::detect().unwrap();
        println!(
            "FACTS mem={} cpus={} limited={}",
            facts.memory_mib(),
            facts.cpus,
            facts.memory_limited
        );
        return;
    }
    if common::host_code_only(this_test!(), "it runs the host's library code, not envinit") {
        return;
    }
    let Some(group) = cgroup_or_skip() else {
        return;
    };
    let me = std::env::current_exe().unwrap();
    let output = run_in(
        &group,
        &me,
        &[this_test!(), "--exact", "--nocapture", "--test-threads=1"],
        &[(PROBE, "1")],
    );
    let stdout = output.out();
    assert!(
        output.status.success(),
        "probe failed ({}): {stdout}{}",
        output.status,
        output.err()
    );
    // libtest prints the test's name on the same line, before the output.
    let line = stdout
        .split_once("FACTS ")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| panic!("no facts in the probe's output: {stdout}"));
    check(line, "true", &group, this_test!());
}

/// The envinit binary renders `container.*` from inside a real cgroup.
#[test]
fn envinit_renders_container_facts_in_a_real_cgroup() {
    if std::env::var_os(PROBE).is_some() {
        return;
    }
    let Some(group) = cgroup_or_skip() else {
        return;
    };
    let dir = std::env::temp_dir().join(unique_name());
    fs::create_dir_all(&dir).unwrap();
    let template = dir.join("facts.tmpl");
    let out = dir.join("facts.out");
    fs::write(
        &template,
        "mem={{ container.memory_mib }} cpus={{ container.cpus }} \
         limited={{ if container.memory_limited }}yes{{ else }}no{{ endif }}\n",
    )
    .unwrap();
    let spec = format!("{}:{}", template.display(), out.display());
    let output = run_in(
        &group,
        Path::new(&common::envinit()),
        &["-t", &spec, "--", "true"],
        &[],
    );
    let rendered = fs::read_to_string(&out);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "envinit failed ({}): {}",
        output.status,
        output.err()
    );
    let rendered = rendered.unwrap_or_else(|e| panic!("envinit wrote no {}: {e}", out.display()));
    check(rendered.trim_end(), "yes", &group, this_test!());
}

/// Checks `mem=M cpus=C limited=L`: the limit, the CPU count (exact when the
/// quota could be set, else at least 1, and a `SKIP CASE` line, or a
/// failure under CI) and `L` equal to `limited`.
fn check(line: &str, limited: &str, group: &TestCgroup, test: &str) {
    let fields: Vec<(&str, &str)> = line
        .split(' ')
        .filter_map(|field| field.split_once('='))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    let context = format!("{line:?} in {}", group.kind);
    assert_eq!(field("mem"), LIMIT_MIB.to_string(), "{context}");
    assert_eq!(field("limited"), limited, "{context}");
    let cpus: u64 = field("cpus")
        .parse()
        .unwrap_or_else(|_| panic!("{context}"));
    match expected_cpus(group) {
        Some(expected) => assert_eq!(cpus, expected, "{context}"),
        None => {
            assert!(cpus >= 1, "{context}");
            common::skip_case(
                test,
                "the CPU quota",
                "the machine would not set a CPU quota on the test cgroup",
            );
        }
    }
}

/// docs/exit-codes.md's 71 outside VM mode: an operating-system call
/// envinit needs before the start fails, here the fork of the command (a
/// pids cgroup that allows two tasks: unshare and envinit). One line naming
/// the command and the call, exit 71.
#[test]
fn a_fork_that_fails_exits_71_with_one_line() {
    if std::env::var_os(PROBE).is_some()
        || !common::have_unshare()
        || common::emulator_lacks(common::Gap::OwnThreads, this_test!())
    {
        return;
    }
    let group = match make_pids_cgroup(2) {
        Ok(group) => group,
        Err(why) => {
            common::prerequisite("a writable pids cgroup", Some(why));
            return;
        }
    };
    let out = run_in(
        &group,
        Path::new("unshare"),
        &[
            "--pid",
            "--fork",
            "--mount-proc",
            &common::envinit().to_string_lossy(),
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(out.code, Some(71), "{}", out.describe());
    assert_eq!(
        out.err_lines(),
        ["envinit: error: cannot start \"true\": fork failed: Try again"],
        "{}",
        out.describe()
    );
}

/// A fresh cgroup whose `pids.max` is `max` (v1 `pids`, else v2 with the
/// pids controller).
fn make_pids_cgroup(max: u32) -> Result<TestCgroup, String> {
    let name = unique_name();
    let mut group = TestCgroup {
        procs: Vec::new(),
        made: Vec::new(),
        quota_set: false,
        kind: "pids",
    };
    let v1 = Path::new("/sys/fs/cgroup/pids");
    let dir = if v1.join("cgroup.procs").exists() {
        child_of_own(v1, &v1_own_cgroup("pids"), &name)
    } else {
        let base = v2_mount().ok_or("no cgroup v1 pids controller and no cgroup v2 mount")?;
        let controllers = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "pids") {
            return Err(format!(
                "cgroup v2 at {} offers no pids controller",
                base.display()
            ));
        }
        base.join(&name)
    };
    make_dir(&dir, &mut group.made)?;
    if !dir.join("pids.max").exists() {
        if let Some(parent) = dir.parent() {
            write(&parent.join("cgroup.subtree_control"), "+pids")?;
        }
    }
    write(&dir.join("pids.max"), &max.to_string())?;
    group.procs.push(dir.join("cgroup.procs"));
    Ok(group)
}
