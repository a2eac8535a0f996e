//! The harness itself (tests/common): a green run must mean what it says.
//! Under `CI=true` a test whose prerequisite is missing fails, and its
//! failure names the missing tool; elsewhere it skips with one `SKIP:` line
//! naming it. Checked for real: one small, fast test of another test
//! binary is run with PATH stripped of one tool (groupadd, setpriv,
//! docker), once with `CI=true` and once without.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TempDir;

/// A tool, and a test of another test binary that needs it (and fails or
/// skips at once without it).
struct Case {
    tool: &'static str,
    /// The test target (tests/NAME.rs).
    target: &'static str,
    test: &'static str,
}

const CASES: &[Case] = &[
    Case {
        tool: "groupadd",
        target: "legacy",
        test: "the_child_runs_as_the_user_with_its_groups_and_home",
    },
    Case {
        tool: "setpriv",
        target: "legacy",
        test: "user_while_not_root_only_names_the_current_user",
    },
    Case {
        tool: "docker",
        target: "docker_legacy",
        test: "user_wait_and_probe_in_a_from_scratch_image",
    },
];

/// The newest binary of test target `target` beside this one (cargo builds
/// every test target of a run before it runs any, into the same
/// directory, as `TARGET-HASH`).
fn sibling(target: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    let prefix = format!("{target}-");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&prefix)
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let executable = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111;
            let modified = meta.modified().ok()?;
            (meta.is_file() && executable != 0).then(|| (modified, e.path()))
        })
        .max()
        .map(|(_, path)| path)
}

/// A directory of links to every program on PATH but `tool`: a PATH
/// without it.
fn path_without(tool: &str, dir: &Path) -> String {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    for from in std::env::split_paths(&paths) {
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = dir.join(&name);
            if name != tool && !link.exists() {
                let _ = std::os::unix::fs::symlink(entry.path(), link);
            }
        }
    }
    assert!(
        common::which(tool).is_some(),
        "{tool} must exist to be taken away"
    );
    dir.to_str().unwrap().to_string()
}

#[test]
fn a_missing_prerequisite_fails_under_ci_and_names_itself() {
    for case in CASES {
        let Some(binary) = sibling(case.target) else {
            panic!(
                "no {} test binary beside this one: run the whole suite (cargo test --tests)",
                case.target
            );
        };
        let bin = TempDir::new(&format!("no-{}", case.tool));
        let path = path_without(case.tool, bin.path());
        for ci in [true, false] {
            let mut command = Command::new(&binary);
            command
                .args([case.test, "--exact", "--test-threads=1"])
                .env("PATH", &path)
                .env_remove("CI");
            if ci {
                command.env("CI", "true");
            }
            let out = common::run_for(&mut command, Duration::from_secs(120));
            let text = format!("{}{}", out.out(), out.err());
            let what = format!("{} without {} (CI={ci})", case.test, case.tool);
            if ci {
                assert_eq!(out.code, Some(101), "{what} did not fail:\n{text}");
                assert!(
                    text.contains(&format!(
                        "missing prerequisite (CI=true: a missing prerequisite is a failure): {} is unavailable",
                        case.tool
                    )),
                    "{what}: the failure does not name {}:\n{text}",
                    case.tool
                );
            } else {
                out.assert_code(0);
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(&format!("SKIP: {} is unavailable", case.tool))),
                    "{what}: no SKIP line naming {}:\n{text}",
                    case.tool
                );
            }
        }
    }
}
