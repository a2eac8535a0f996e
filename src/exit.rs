//! envinit's exit codes: the child's own code passes through; these are the
//! codes envinit uses for its own failures (sysexits and the shell's
//! conventions), documented in docs/exit-codes.md.

/// A usage error on the command line (EX_USAGE).
pub const USAGE: u8 = 64;
/// A dependency named by `--wait` was not ready in time; the app was not
/// started (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// An operating-system call envinit needs for setup failed (EX_OSERR).
pub const OS_ERROR: u8 = 71;
/// A configuration error: a bad `ENVINIT_*` value, or a template or ini
/// file that could not be rendered (EX_CONFIG).
pub const CONFIG: u8 = 78;
/// The command was found but could not be executed (as in POSIX shells).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found (as in POSIX shells).
pub const NOT_FOUND: u8 = 127;
/// Added to a signal number when the child was killed by that signal.
pub const SIGNAL_BASE: u8 = 128;
