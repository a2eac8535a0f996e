//! The attack suite: envinit runs as root (real PID 1, under unshare)
//! while the app runs as an unprivileged `--user`, and the app tries to use
//! envinit's root rights on paths it controls: a symlink at each component,
//! a rename-and-replace while envinit follows a file, a hard link,
//! `/proc/1/environ`, a planted parent directory under a render
//! destination. Each test states the attack, then checks that envinit
//! reached nothing the app could not reach itself (docs/security.md).
//!
//! Keep adding to it: every feature that opens, writes or chowns a path as
//! root for the app gets its attacks here.

mod common;
