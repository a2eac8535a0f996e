//! Appfs: the one place where envinit, running as root, touches paths that
//! the app (or another unprivileged process in the container) may control.
//! docs/security.md states the threat model this module carries out.
//!
//! envinit stays root while the app runs as its `--user`. Anything root
//! opens, writes or chowns inside a directory the app can write is the
//! app's to redirect: a symlink planted at the last component or at any
//! directory on the way, a hard link, a rename-and-replace between a check
//! and its use. Two mechanisms hold against that, and nothing outside this
//! module opens such paths:
//!
//! - [`creds`]: acting with the app's filesystem credentials. Followed log
//!   files (`--stdout`/`--stderr`) are looked up, watched and opened with
//!   the `--user`'s fsuid, fsgid and groups, so the kernel checks exactly
//!   what it would check for the app itself (`/proc/1/environ` included).
//! - [`chase`]: walking a path safely as root. Render destinations (and the
//!   directories created for them) and the files root reads for the app
//!   (secrets, `X_FILE`, templates) are resolved component by component
//!   under systemd's CHASE_SAFE rule: from a directory or symlink owned by
//!   a non-root user, the next component must belong to that same user.

pub mod chase;
pub mod creds;
