//! Render benchmark (harness = false, std::time only): envinit's in-process
//! rendering next to spawning `envsubst` on equivalent input, in one run.
//!
//! - 1,000 small templates (~350 bytes, 6 references each): rendered from
//!   memory, and as a `--check` run over a directory of 1,000 files (reads
//!   included); envsubst spawned once per template.
//! - One 1 MiB template with 1,000 references; envsubst on the same text.
//!
//! Goal (issue 3): each template costs less than one envsubst spawn, and the
//! 1 MiB template is no slower than envsubst. Run: `cargo bench --bench render`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envinit::container::Facts;
use envinit::render::{PathPair, RenderSettings};
use envinit::render::{Values, render_template, run_with};

const SMALL: usize = 1_000;
const ROUNDS: usize = 5;

fn small_template(i: usize) -> (String, String) {
    let envinit = format!(
        "; template {i}\n[PHP]\nmemory_limit = {{{{ PHP_MEMORY_LIMIT | default \"128M\" }}}}\n\
         upload_max_filesize = {{{{ PHP_UPLOAD_MAX }}}}\npost_max_size = {{{{ PHP_POST_MAX }}}}\n\
         date.timezone = {{{{ TZ }}}}\n[www]\npm.max_children = {{{{ FPM_CHILDREN }}}}\n\
         server {{ listen {{{{ PORT }}}}; location / {{ return 200 'ok'; }} }}\n"
    );
    let envsubst = format!(
        "; template {i}\n[PHP]\nmemory_limit = ${{PHP_MEMORY_LIMIT}}\n\
         upload_max_filesize = ${{PHP_UPLOAD_MAX}}\npost_max_size = ${{PHP_POST_MAX}}\n\
         date.timezone = ${{TZ}}\n[www]\npm.max_children = ${{FPM_CHILDREN}}\n\
         server {{ listen ${{PORT}}; location / {{ return 200 'ok'; }} }}\n"
    );
    (envinit, envsubst)
}

/// ~1 MiB of config-like lines with 1,000 references to 100 variables.
fn big_template() -> (String, String) {
    let filler = "# a config line that is not a reference, with { braces } and $dollars\n";
    let mut envinit = String::new();
    let mut envsubst = String::new();
    for i in 0..1_000 {
        while envinit.len() < (i + 1) * 1_040 {
            envinit.push_str(filler);
            envsubst.push_str(filler);
        }
        let var = format!("VAR_{}", i % 100);
        envinit.push_str(&format!("key_{i} = {{{{ {var} }}}}\n"));
        envsubst.push_str(&format!("key_{i} = ${{{var}}}\n"));
    }
    (envinit, envsubst)
}

fn env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PHP_MEMORY_LIMIT", "1G"),
        ("PHP_UPLOAD_MAX", "16M"),
        ("PHP_POST_MAX", "16M"),
        ("TZ", "Europe/Paris"),
        ("FPM_CHILDREN", "8"),
        ("PORT", "8080"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend((0..100).map(|i| (format!("VAR_{i}"), format!("value-{i}"))));
    env
}

fn values(dir: PathBuf) -> Values {
    Values::new(
        env()
            .into_iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        dir,
    )
    .with_container(|| Facts {
        memory_bytes: 1 << 30,
        memory_limited: true,
        cpus: 2,
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn envsubst(input: &str) -> Option<Duration> {
    let start = Instant::now();
    let mut child = Command::new("envsubst")
        .env_clear()
        .envs(env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    out.status.success().then(|| start.elapsed())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let dir = std::env::temp_dir().join(format!("envinit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("templates")).unwrap_or_else(|e| panic!("{e}"));
    let values = values(dir.join("secrets"));
    let smalls: Vec<(String, String)> = (0..SMALL).map(small_template).collect();
    for (i, (t, _)) in smalls.iter().enumerate() {
        std::fs::write(dir.join(format!("templates/t{i:04}.conf.tmpl")), t)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    // 1,000 small templates, from memory.
    let mem = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                for (i, (t, _)) in smalls.iter().enumerate() {
                    let out = render_template(&format!("t{i}"), t.as_bytes(), &values);
                    assert!(out.is_ok(), "{out:?}");
                }
                start.elapsed()
            })
            .collect(),
    );
    // The same as a --check run over a directory (reads and walk included).
    let settings = RenderSettings {
        templates: vec![PathPair {
            src: dir.join("templates"),
            dest: dir.join("out"),
        }],
        check: true,
        ..RenderSettings::default()
    };
    let run = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let summary = run_with(&settings, &values);
                assert!(matches!(summary, Ok(s) if s.rendered == SMALL));
                start.elapsed()
            })
            .collect(),
    );

    // One 1 MiB template with 1,000 references.
    let (big, big_envsubst) = big_template();
    let big_time = median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let out = render_template("big", big.as_bytes(), &values);
                assert!(out.is_ok());
                start.elapsed()
            })
            .collect(),
    );

    println!("envinit render benchmark ({} rounds, medians)", ROUNDS);
    println!(
        "  1,000 small templates, in memory:   {:>10.1} us total, {:>8.2} us per template",
        us(mem),
        us(mem) / SMALL as f64
    );
    println!(
        "  1,000 small templates, --check run: {:>10.1} us total, {:>8.2} us per template",
        us(run),
        us(run) / SMALL as f64
    );
    println!(
        "  one {} KiB template, 1,000 refs:     {:>10.1} us",
        big.len() / 1024,
        us(big_time)
    );

    // envsubst on equivalent input, one spawn per template.
    let Some(_) = envsubst("warm-up ${TZ}\n") else {
        println!("  envsubst not found: install gettext-base to compare");
        return;
    };
    let start = Instant::now();
    for (_, e) in &smalls {
        if envsubst(e).is_none() {
            println!("  envsubst failed");
            return;
        }
    }
    let spawn_total = start.elapsed();
    let spawn_each = spawn_total / SMALL as u32;
    let big_envsubst_time = median(
        (0..ROUNDS)
            .filter_map(|_| envsubst(&big_envsubst))
            .collect(),
    );
    println!(
        "  envsubst, 1,000 small templates:    {:>10.1} us total, {:>8.2} us per spawn",
        us(spawn_total),
        us(spawn_each)
    );
    println!(
        "  envsubst, the 1 MiB template:       {:>10.1} us",
        us(big_envsubst_time)
    );
    println!(
        "  ratio small (envsubst spawn / envinit template): {:.0}x in memory, {:.0}x --check run",
        us(spawn_each) / (us(mem) / SMALL as f64),
        us(spawn_each) / (us(run) / SMALL as f64)
    );
    println!(
        "  ratio 1 MiB (envsubst / envinit): {:.2}x",
        us(big_envsubst_time) / us(big_time)
    );
    let ok_small = run / SMALL as u32 <= spawn_each;
    let ok_big = big_time <= big_envsubst_time;
    println!(
        "  goal: every template < one envsubst spawn: {}; 1 MiB no slower than envsubst: {}",
        if ok_small { "met" } else { "MISSED" },
        if ok_big { "met" } else { "MISSED" }
    );
    let _ = std::fs::remove_dir_all(&dir);
}
