//! envinit: a PID 1 for containers that renders the app's config from the
//! environment, then runs the app and supervises it.
//!
//! The binary (`src/main.rs`) tells the story of a container start, one call
//! per phase; ARCHITECTURE.md maps the modules. From the top down:
//!
//! - [`settings`]: assembles each phase's options into one value.
//! - [`supervisor`]: the Linux side of PID 1: spawn, the poll loop, reaping.
//! - [`vm`]: VM mode, envinit as a microVM's init: boot and power-off.
//! - [`launch`]: what the app runs as and with (`--user`, `--export-file-var`).
//! - [`render`]: config files rendered from the environment (templates, ini).
//! - [`reload`]: the render run again on a signal or a change, the app told.
//! - [`wait`]: dependencies awaited before the start, and `--probe`.
//! - [`image`]: the image config (`docker image inspect`) VM mode applies.
//! - [`procs`]: several processes from a Procfile (`--procfile`), per-process options.
//! - [`lifecycle`]: what PID 1 decides on each event, free of system calls.
//! - [`container`]: the container's memory and CPU limits, from its cgroup.
//! - [`follow`]: log files copied to stdout/stderr (`--stdout`, `--stderr`).
//! - [`options`]: the option table, the argv lexer, `ENVINIT_*`, value syntax.
//! - [`user`]: /etc/passwd and /etc/group, names and ids for `--user`.
//! - [`appfs`]: root acting on paths the app controls, with the app's rights.
//! - [`logging`]: envinit's own log lines, on stderr only.
//! - [`signals`]: signal names and numbers; taking and reading signals.
//! - [`json`]: JSON string escaping.
//! - [`exit`]: exit codes, the one error type, `--remap-exit`.
//! - [`arena`]: the start-up allocator of the binary.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod appfs;
pub mod arena;
pub mod container;
pub mod exit;
pub mod follow;
pub mod image;
pub mod json;
pub mod launch;
pub mod lifecycle;
pub mod logging;
pub mod options;
pub mod procs;
pub mod reload;
pub mod render;
pub mod settings;
pub mod signals;
pub mod supervisor;
pub mod user;
pub mod vm;
pub mod wait;
