//! Container facts: the memory limit and usable CPU count of the cgroup this
//! process runs in (cgroup v1, v2 or hybrid), else the machine's. (Stub.)

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
