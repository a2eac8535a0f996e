//! Follow: copies the lines an app writes to log files (`--stdout FILE`,
//! `--stderr FILE`) to envinit's own stdout or stderr, as `tail -F` would,
//! for apps that can only log to files. docs/options.md, "Log files".
//!
//! It owns one inotify instance (a watch on each file's directory), the open
//! files, and a fixed line buffer per open file. It runs no thread: the
//! supervisor adds [`Followers::poll_fds`] to its one poll (and
//! [`Followers::deadline`] to its timeout), calls [`Followers::on_ready`]
//! after every wake-up, and [`Followers::drain`] once the app and everything
//! else have exited.
//!
//! Promises:
//! - Nothing at all (no inotify instance, no allocation, no system call)
//!   when no file is given.
//! - The files are read with the app's rights: every path operation (the
//!   watches, the look-ups that detect a rotation, the opens) goes through
//!   [`crate::appfs::creds`] with the `--user`'s filesystem credentials, so
//!   whatever the app does to its log directory (a symlink to a root-only
//!   file, at the file or at a directory, a hard link, `/proc/1/environ`),
//!   envinit reads nothing the app could not read itself. Only regular
//!   files are ever opened for reading, and none of /proc. Without
//!   `--user` the app is root and so is the reading.
//! - Every complete line goes out in one write. Lines are batched up to
//!   PIPE_BUF (4096 bytes) per write, which a pipe never interleaves with
//!   the app's own output; a single longer line is still one write. Lines
//!   of two files (or of two generations of one file) never interleave
//!   mid-line.
//! - Lines already in a file when envinit starts are not copied (a
//!   restarted container would repeat them); a file that appears later is
//!   copied from its first byte.
//! - Rotation: when the name points to a new file (renamed away and
//!   re-created, or deleted and re-created), the new file is followed from
//!   its start, and the old one is read on through its open descriptor
//!   until the app writes to a newer file and the old one has been quiet
//!   (no new byte) for the rotate-wait period (`--rotate-wait`, 5 s by
//!   default, as fluent-bit's `Rotate_Wait`; 0: until its end), or, read
//!   to its end, as soon as a third file waits: lines an app writes to the
//!   renamed file before it reopens its log (logrotate's `create` mode),
//!   or for good when it never reopens it (a postrotate that failed), are
//!   copied too. The old file's lines go out before the new one's, whole
//!   lines each. A file renamed away before envinit opened it (rotations
//!   faster than it looks) is found where the rename's inotify events say
//!   it went, and read from its start; a name is looked at only once the
//!   queued events are read, so such files come in order (unless envinit
//!   lags 16 batches of events behind: then the name is looked at anyway,
//!   and such a file's lines may come after some of the newer one's). At
//!   the end, every file still held is read to its end. Truncation: a file
//!   that became shorter than what was read is read again from its start.
//!   No line is repeated. Lost are only the lines of a file deleted (or
//!   moved out of the watched directories) before envinit opened it, and
//!   those written to a rotated file after it was let go (and after an
//!   inotify queue overflow, files renamed away unseen).
//! - A line longer than [`LINE_MAX`] is split into pieces of that size,
//!   never dropped (the `\n` ending a line of exactly N pieces adds no empty
//!   line); at the end, a last line without a newline is copied with one
//!   added.
//! - Memory is bounded: a [`LINE_MAX`] buffer for each file being read,
//!   whatever it holds: one per name, two while a rotated file is read on
//!   (three at most, when a file renamed away unseen is found). At most
//!   [`MAX_GENERATIONS`] files are held per name (an open descriptor each):
//!   near that, inotify events wait in the kernel until the output has
//!   taken the oldest file's lines; should it be passed all the same, the
//!   oldest is let go with a warning. The files themselves are the buffer
//!   while output waits.
//! - No periodic wake-up: inotify wakes the loop; a deadline is asked for
//!   only while a rotated file, read to its end, waits to be quiet.
//! - PID 1 never blocks on its own output while the app runs: a batch is
//!   written only when stdout or stderr can take it (poll), and a file that
//!   keeps growing is read in bounded slices between signals. A stdout
//!   that cannot be written any more (a closed pipe: EPIPE) drops the copies
//!   with one warning; the app is not disturbed.
//! - A file or directory that cannot be read or watched gives one warning;
//!   the app runs on. envinit never creates, changes or removes the files.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::uio::writev;

use crate::appfs::creds::{Creds, FileId};
use crate::exit::{self, Failure};
use crate::options::{Given, parse_bool, parse_duration};
use crate::signals::intake::Wakers;
use crate::user::Identity;

/// The longest line copied whole; longer lines are split into pieces of
/// this size (each written as a line of its own). Also the size of each
/// open file's buffer.
pub const LINE_MAX: usize = 64 * 1024;

/// How long a rotated file is read on after its last new byte, by default,
/// in milliseconds (`--rotate-wait`; fluent-bit's `Rotate_Wait` is 5 s too).
pub const ROTATE_WAIT_MS: u32 = 5000;

/// The most files held per followed name (the newest and the rotated ones
/// still read on: an open descriptor each, a buffer only for the two being
/// read). Near it, inotify events wait in the kernel until the output has
/// taken the oldest file's lines; should it still be passed, the oldest is
/// dropped with a warning.
pub const MAX_GENERATIONS: usize = 32;

/// The most bytes of inotify events read at once: room for the longest
/// event (16 bytes and a name of up to 255 bytes, NUL-padded: 272), and at
/// most 16 events (an event with a name takes 32 bytes at least).
const EVENT_BATCH: usize = 512;

/// How many files one batch of events (and the look at the name after it)
/// can add to a name at most: one per event, and one.
const BATCH_ADDS: usize = EVENT_BATCH / 32 + 1;

/// The most batches of events read in a row, each leaving more in the
/// queue, before a followed name is looked at anyway (see
/// [`Active::events_empty`]).
const MAX_DEFERRED: u8 = 16;

/// The most batches of events taken at the final drain (a bound in case
/// something outside the container keeps changing the directories).
const DRAIN_BATCHES: usize = 1 << 14;

/// The most bytes written at once when several lines go together: pipes
/// write up to this much atomically.
const PIPE_BUF: usize = 4096;

/// The most bytes read from one file per wake-up while the app runs, so a
/// file that grows without pause does not keep signals waiting.
const SLICE: usize = 4 * LINE_MAX;

/// The most bytes read from one file at the final drain (a bound in case
/// something outside the container keeps writing it).
const DRAIN_MAX: usize = 256 << 20;

/// How long the final drain waits for stdout or stderr to take a write.
const DRAIN_WAIT_MS: u16 = 5000;

/// Pieces (prefixes, lines, added newlines) per write.
const MAX_PIECES: usize = 128;

/// What a watched directory reports: changes to the files in it (writes,
/// truncations, names appearing and disappearing) and its own removal.
const WATCH: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// Events that say a name in a directory may point elsewhere now.
const NAME_CHANGED: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ATTRIB);

/// Events that say a name appeared in a directory (perhaps the next
/// directory down towards a missing one).
const APPEARED: AddWatchFlags = AddWatchFlags::IN_CREATE.union(AddWatchFlags::IN_MOVED_TO);

/// Events that say a watched directory itself is gone or elsewhere.
const DIR_GONE: AddWatchFlags = AddWatchFlags::IN_DELETE_SELF
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_IGNORED)
    .union(AddWatchFlags::IN_UNMOUNT);

/// The options of this feature (docs/options.md, "Log files").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    /// `--stdout FILE`: files whose lines go to envinit's stdout.
    pub stdout: Vec<PathBuf>,
    /// `--stderr FILE`: files whose lines go to envinit's stderr.
    pub stderr: Vec<PathBuf>,
    /// `--log-prefix`: start each copied line with `NAME: `, the file's name.
    pub prefix: bool,
    /// `--rotate-wait`, in milliseconds: how long a rotated file is read on
    /// after its last new byte (zero: until its end, then the new file
    /// alone). Milliseconds in 32 bits keep the settings (moved once at
    /// start-up) as small as they were before.
    pub rotate_wait_ms: u32,
}

impl Default for FollowSettings {
    fn default() -> FollowSettings {
        FollowSettings {
            stdout: Vec::new(),
            stderr: Vec::new(),
            prefix: false,
            rotate_wait_ms: ROTATE_WAIT_MS,
        }
    }
}

impl FollowSettings {
    /// True when no file is followed (the common case: nothing to do).
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

impl FollowSettings {
    /// `--stdout`, `--stderr`, `--log-prefix`.
    pub fn from_options(given: &mut Given) -> Result<FollowSettings, Failure> {
        let mut follow = FollowSettings::default();
        if let Some(r) = given.take("stdout") {
            follow.stdout = r.parse_each(parse_path)?;
        }
        if let Some(r) = given.take("stderr") {
            follow.stderr = r.parse_each(parse_path)?;
        }
        if let Some(r) = given.take("log-prefix") {
            follow.prefix = r.parse_last(parse_bool)?.unwrap_or(false);
        }
        if let Some(r) = given.take("rotate-wait") {
            if let Some(wait) = r.parse_last(parse_duration)? {
                follow.rotate_wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            }
        }
        Ok(follow)
    }
}

/// Checks a `--stdout`/`--stderr` value: it must name a file (a last
/// component that is not `/`, `.` or `..`).
pub fn parse_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if text.ends_with('/') || path.file_name().is_none() {
        return Err(format!(
            "{text:?} does not name a file (write e.g. /var/log/app.log)"
        ));
    }
    Ok(path)
}

/// The log files followed in this run; empty (and free) when none is.
pub struct Followers(Option<Box<Active>>);

impl Followers {
    /// Follows no file.
    pub fn none() -> Followers {
        Followers(None)
    }

    /// Starts following the files of `settings` (before the app starts, so
    /// no line is missed), with the rights of `user` (the `--user` envinit
    /// switches the app to; `None` when there is none or envinit already
    /// runs as it). With no files this does nothing at all. Problems are
    /// warnings: the app starts anyway.
    #[inline]
    pub fn start(settings: &FollowSettings, user: Option<&Identity>) -> Followers {
        if settings.is_empty() {
            return Followers(None);
        }
        Followers::start_as(settings, user)
    }

    /// [`Followers::start`] once there are files: takes the rights.
    #[inline(never)]
    fn start_as(settings: &FollowSettings, user: Option<&Identity>) -> Followers {
        let creds = match user.map(|u| Creds::of(u.uid, u.gid, &u.groups)) {
            None => Creds::own(),
            Some(Ok(creds)) => creds,
            Some(Err(e)) => {
                warn(
                    "cannot take the --user's rights for the --stdout/--stderr files: not copied",
                    Path::new("getgroups"),
                    e.desc(),
                );
                return Followers(None);
            }
        };
        Followers::start_to(settings, creds, [libc::STDOUT_FILENO, libc::STDERR_FILENO])
    }

    /// As [`Followers::start`], with `creds`, writing to `outputs` (stdout,
    /// stderr).
    fn start_to(settings: &FollowSettings, creds: Creds, outputs: [RawFd; 2]) -> Followers {
        let inotify = match Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) {
            Ok(inotify) => inotify,
            Err(e) => {
                warn(
                    "cannot watch the --stdout/--stderr files (check fs.inotify.max_user_instances): their lines are not copied",
                    Path::new("inotify_init"),
                    e.desc(),
                );
                return Followers(None);
            }
        };
        let mut active = Active {
            inotify,
            creds,
            rotate_wait: Duration::from_millis(settings.rotate_wait_ms.into()),
            dirs: Vec::new(),
            files: Vec::new(),
            sinks: [
                Sink::new(outputs[0], "stdout", FILES),
                Sink::new(outputs[1], "stderr", FILES),
            ],
            events_empty: true,
            deferred: 0,
        };
        let cwd = std::env::current_dir().unwrap_or_default();
        for (sink, paths) in [(0, &settings.stdout), (1, &settings.stderr)] {
            for path in paths {
                active.add(cwd.join(path), sink, settings.prefix);
            }
        }
        for (d, dir) in active.dirs.iter_mut().enumerate() {
            if let Err(e) = dir.resolve(&active.inotify, &active.creds) {
                dir.warn(e, d, &mut active.files);
            }
        }
        for file in &mut active.files {
            file.open(&active.creds, false);
        }
        Followers(Some(Box::new(active)))
    }

    /// After a wake-up: takes the inotify events and copies what the files
    /// hold now, as far as the outputs take it without blocking. Inlined
    /// (a test for none on the wake-up path), the work out of line.
    #[inline(always)]
    pub fn on_ready(&mut self) {
        if let Some(active) = &mut self.0 {
            active.on_ready();
        }
    }

    /// At the end, once every process is gone: copies everything the files
    /// hold (rotated ones still held first, following a last rotation),
    /// then each last line without a newline. Waits for the outputs, up to
    /// 5 s each write.
    pub fn drain(&mut self) {
        if let Some(active) = &mut self.0 {
            // Batch by batch, each file read to its end in between, so that
            // rotated files do not pile up.
            for _ in 0..DRAIN_BATCHES {
                if !active.take_events() {
                    break;
                }
                active.pump_all(true);
            }
            for file in &mut active.files {
                file.check = true;
            }
            active.pump_all(true);
            for file in &mut active.files {
                if let Some(generation) = file.gens.last_mut() {
                    generation.lines.flush_partial = true;
                    let sink = &mut active.sinks[file.sink];
                    generation.lines.write_lines(sink, true, &file.prefix);
                }
            }
        }
    }
}

/// The followers' fds wake the supervision loop (see [`Wakers`]).
impl Wakers for Followers {
    /// True when files are followed (the supervisor then polls).
    fn active(&self) -> bool {
        self.0.is_some()
    }

    /// The inotify fd (readable), and stdout or stderr (writable) while
    /// lines wait for them or a file was only partly read.
    fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize {
        let Some(active) = &self.0 else {
            return 0;
        };
        // Events are not taken while a name holds too many files: the
        // outputs' readiness wakes the loop then.
        let mut wanted = (!active.stalled())
            .then(|| (active.inotify_fd(), PollFlags::POLLIN))
            .into_iter()
            .chain(active.sinks.iter().enumerate().filter_map(|(i, sink)| {
                let waiting = active.files.iter().any(|f| f.sink == i && f.pending);
                (waiting && !sink.dead).then(|| (sink.fd(), PollFlags::POLLOUT))
            }));
        let mut used = 0;
        for slot in out.iter_mut() {
            let Some((fd, flags)) = wanted.next() else {
                break;
            };
            *slot = PollFd::new(fd, flags);
            used += 1;
        }
        used
    }

    /// The moment a rotated file, read to its end while the app writes a
    /// newer one, will have been quiet for the rotate-wait period. None (no
    /// wake-up) while no such file is held.
    fn deadline(&self) -> Option<Instant> {
        let active = self.0.as_ref()?;
        if active.rotate_wait.is_zero() {
            return None;
        }
        active
            .files
            .iter()
            .filter(|f| f.held() && !f.pending && f.gens[1..].iter().any(|g| g.fed))
            .filter_map(|f| f.gens[0].quiet_since)
            .min()
            .map(|since| since + active.rotate_wait)
    }
}

struct Active {
    inotify: Inotify,
    /// Whose rights every path operation uses (the `--user`'s).
    creds: Creds,
    rotate_wait: Duration,
    dirs: Vec<Dir>,
    files: Vec<Follower>,
    /// stdout, stderr.
    sinks: [Sink; 2],
    /// The last read of events left the queue empty. Names are looked at
    /// (a new file opened) only then: the events still queued may tell of
    /// files renamed away before it, whose lines come first.
    events_empty: bool,
    /// Batches read in a row that left events in the queue.
    deferred: u8,
}

impl Active {
    /// [`Followers::on_ready`] with files followed.
    #[inline(never)]
    fn on_ready(&mut self) {
        if !self.stalled() {
            self.take_events();
        }
        self.pump_all(false);
    }

    fn inotify_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.inotify.as_fd()
    }

    /// Adds a follower of `path` (absolute) writing to sink `sink`.
    fn add(&mut self, path: PathBuf, sink: usize, prefix: bool) {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let dir = match self.dirs.iter().position(|d| d.path == dir) {
            Some(i) => i,
            None => {
                self.dirs.push(Dir {
                    path: dir.to_path_buf(),
                    wd: None,
                    ancestor: None,
                    warned: false,
                });
                self.dirs.len() - 1
            }
        };
        let prefix = if prefix {
            format!("{}: ", name.to_string_lossy()).into_bytes()
        } else {
            Vec::new()
        };
        self.files.push(Follower {
            name: name.to_os_string(),
            path,
            dir,
            sink,
            prefix: prefix.into_boxed_slice(),
            gens: Vec::new(),
            moving: None,
            dropped: Vec::new(),
            dropped_before: 0,
            check: false,
            dirty: false,
            pending: false,
            warned: false,
        });
    }

    /// True while a name holds so many files that one more batch of
    /// events could pass [`MAX_GENERATIONS`]: events wait in the kernel.
    fn stalled(&self) -> bool {
        self.files
            .iter()
            .any(|f| f.gens.len() + BATCH_ADDS > MAX_GENERATIONS)
    }

    /// Reads one batch of queued inotify events (while running, one per
    /// wake-up: events left over keep the fd readable for the next poll)
    /// and marks the files they concern: to read again (anything in their
    /// directory) and to look at their path again (their name created,
    /// moved, deleted or changed). A file renamed away from a followed name
    /// is looked at where it went, in case envinit never opened it.
    /// Returns whether a batch was read.
    fn take_events(&mut self) -> bool {
        // Files dropped before this read: once the queue is read empty,
        // every event about them has been seen.
        for file in &mut self.files {
            file.dropped_before = file.dropped.len();
        }
        // Read and parsed in place (nix's read_events allocates a vector
        // and a name per event): `struct inotify_event` is wd, mask,
        // cookie, len (4 bytes each), then `len` bytes of NUL-padded name.
        let mut buf = [0u8; EVENT_BATCH];
        let (read, empty) = self.read_events(&mut buf);
        let took = read.is_some();
        let read = read.unwrap_or(0);
        let mut rescan = false;
        let mut at = 0;
        while at + 16 <= read {
            let word = |i: usize| {
                let b = &buf[at + i..at + i + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            let (wd, mask, cookie) = (word(0) as i32, word(4), word(8));
            let len = word(12) as usize;
            let name = &buf[(at + 16).min(read)..(at + 16 + len).min(read)];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            at += 16 + len;
            let event = Event {
                wd,
                mask: AddWatchFlags::from_bits_truncate(mask),
                cookie,
                name,
            };
            rescan |= self.on_event(&event);
        }
        if rescan {
            self.rescan_dirs();
        }
        if empty {
            for file in &mut self.files {
                file.dropped.drain(..file.dropped_before);
            }
        }
        self.events_empty = empty;
        self.deferred = if empty {
            0
        } else {
            self.deferred.saturating_add(1)
        };
        took
    }

    /// One read of the inotify fd into `buf`: the bytes read (`None` when
    /// nothing was), and whether the queue is now empty.
    fn read_events(&self, buf: &mut [u8; EVENT_BATCH]) -> (Option<usize>, bool) {
        loop {
            return match nix::unistd::read(self.inotify_fd(), buf) {
                // Room left for the longest event: the queue was empty.
                Ok(read) => (Some(read), read + 16 + 256 <= buf.len()),
                Err(Errno::EAGAIN) => (None, true),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    warn(
                        "reading inotify events failed; carrying on",
                        Path::new("inotify"),
                        e.desc(),
                    );
                    (None, false)
                }
            };
        }
    }

    /// Marks the files one event concerns; returns whether the directories
    /// must be looked at again (one appeared or went, or events were lost).
    fn on_event(&mut self, event: &Event<'_>) -> bool {
        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Events were lost: look at everything again.
            for file in &mut self.files {
                file.dirty = true;
                file.check = true;
            }
            return true;
        }
        let mut rescan = false;
        for (d, dir) in self.dirs.iter_mut().enumerate() {
            if dir.ancestor == Some(event.wd) && event.mask.intersects(APPEARED | DIR_GONE) {
                rescan = true;
            }
            if dir.wd != Some(event.wd) {
                continue;
            }
            if event.mask.intersects(DIR_GONE) {
                dir.wd = None;
                rescan = true;
            }
            if event.mask.contains(AddWatchFlags::IN_MOVED_TO) {
                // Where a followed name's file went (any follower's: the
                // rename may cross directories).
                for file in &mut self.files {
                    if file.moving == Some(event.cookie) {
                        file.moving = None;
                        let to = dir.path.join(OsStr::from_bytes(event.name));
                        file.moved_to(&to, &self.creds);
                    }
                }
            }
            let renamed = event.mask.intersects(NAME_CHANGED | DIR_GONE);
            for file in self.files.iter_mut().filter(|f| f.dir == d) {
                // Also for other names: a file renamed away keeps reporting
                // its writes under its new name.
                file.dirty = true;
                let named = event.name == file.name.as_bytes();
                if renamed && (event.name.is_empty() || named) {
                    file.check = true;
                }
                if named && event.mask.contains(AddWatchFlags::IN_MOVED_FROM) {
                    file.moving = Some(event.cookie);
                }
            }
        }
        rescan
    }

    /// Watches again the directories whose watch is gone or that did not
    /// exist: their files are looked at anew once they are watched.
    fn rescan_dirs(&mut self) {
        for (d, dir) in self.dirs.iter_mut().enumerate() {
            if dir.wd.is_some() {
                continue;
            }
            match dir.resolve(&self.inotify, &self.creds) {
                Ok(()) if dir.wd.is_some() => {
                    for file in self.files.iter_mut().filter(|f| f.dir == d) {
                        file.dirty = true;
                        file.check = true;
                    }
                }
                Ok(()) => {}
                Err(e) => dir.warn(e, d, &mut self.files),
            }
        }
    }

    /// Copies what each marked file holds, in slices while the app runs
    /// (`drain` false), or everything while draining at the end.
    fn pump_all(&mut self, drain: bool) {
        let look = self.events_empty || self.deferred >= MAX_DEFERRED;
        for file in &mut self.files {
            if file.check && look {
                file.check_path(&self.creds);
            }
            if self.sinks[file.sink].dead {
                // Nowhere to copy to: leave the files alone (and hold no
                // rotated one).
                file.pending = false;
                while file.held() {
                    file.drop_oldest(0);
                }
                continue;
            }
            // A held rotated file is looked at on every wake-up (its quiet
            // period may be over): only while one is held.
            if drain || file.dirty || file.pending || file.held() {
                file.dirty = false;
                let limit = if drain { DRAIN_MAX } else { SLICE };
                let wait = (!drain).then_some(self.rotate_wait);
                file.pending = file.pump(&mut self.sinks[file.sink], wait, limit);
            }
        }
    }
}

/// One inotify event, parsed in place.
struct Event<'a> {
    wd: i32,
    mask: AddWatchFlags,
    /// Ties an IN_MOVED_FROM to its IN_MOVED_TO.
    cookie: u32,
    /// The name in the watched directory; empty for the directory itself.
    name: &'a [u8],
}

/// A directory holding followed files. While it does not exist, its
/// nearest existing ancestor is watched instead, to see it appear.
struct Dir {
    path: PathBuf,
    /// The watch on the directory itself, once it exists.
    wd: Option<i32>,
    /// The watch on the nearest existing ancestor, while it does not.
    ancestor: Option<i32>,
    /// A warning was given for this directory already.
    warned: bool,
}

impl Dir {
    /// Watches the directory, or its nearest existing ancestor, with the
    /// app's rights (inotify checks read permission on what it watches).
    /// All watches share one mask (a directory may be one file's home and
    /// another's ancestor, and a second watch on it replaces the first's
    /// mask).
    fn resolve(&mut self, inotify: &Inotify, creds: &Creds) -> Result<(), Errno> {
        let mut at: &Path = &self.path;
        loop {
            let wd = match creds.run(|| inotify.add_watch(at, WATCH))? {
                Ok(wd) => wd.as_raw(),
                Err(Errno::ENOENT) => {
                    at = at.parent().ok_or(Errno::ENOENT)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if at == self.path {
                self.wd = Some(wd);
                self.ancestor = None;
                return Ok(());
            }
            self.ancestor = Some(wd);
            // The watch is in place: if the next directory down appeared
            // before it was, no event will tell; look once more.
            let below = self.path.ancestors().find(|a| a.parent() == Some(at));
            let is_dir = |p: &Path| creds.stat(p).is_ok_and(|meta| meta.is_dir());
            match below {
                Some(below) if is_dir(below) => at = &self.path,
                _ => return Ok(()),
            }
        }
    }

    /// One warning per directory, ever, which stands for its files' too
    /// (`d` is this directory's index among `files`' directories).
    fn warn(&mut self, e: Errno, d: usize, files: &mut [Follower]) {
        if !self.warned {
            self.warned = true;
            warn(
                "cannot watch the directory of a --stdout/--stderr file: its lines are not followed",
                &self.path,
                e.desc(),
            );
        }
        for file in files.iter_mut().filter(|f| f.dir == d) {
            file.warned = true;
        }
    }
}

/// One followed name: the files it pointed to that are still read.
struct Follower {
    /// The file's name in its directory (what inotify events name).
    name: OsString,
    path: PathBuf,
    /// Index into `dirs`.
    dir: usize,
    /// 0 stdout, 1 stderr.
    sink: usize,
    /// `NAME: ` with --log-prefix, else empty.
    prefix: Box<[u8]>,
    /// The files read, oldest first: rotated ones still read on, then the
    /// newest (the one the name pointed to when last looked at). At most
    /// [`MAX_GENERATIONS`]; only the first two are read at a time.
    gens: Vec<Generation>,
    /// The cookie of an IN_MOVED_FROM of the name, until its IN_MOVED_TO.
    moving: Option<u32>,
    /// The files dropped since the inotify queue was last read empty: a
    /// rename of one of them may still be in the queue, and must not make
    /// envinit read it again. At most [`MAX_GENERATIONS`].
    dropped: Vec<FileId>,
    /// How many of `dropped` were there when events were last read.
    dropped_before: usize,
    /// Look at the path again (an event named it).
    check: bool,
    /// Read again (an event in its directory).
    dirty: bool,
    /// Stopped with work left: the output did not take a batch, or the
    /// slice of this wake-up was used up.
    pending: bool,
    /// A warning was given for this name already.
    warned: bool,
}

/// One file a followed name pointed to: where reading stopped, and the
/// bytes read but not yet written.
struct Generation {
    file: File,
    /// Device and inode, to see the name point elsewhere.
    id: FileId,
    /// Bytes of `file` read so far.
    offset: u64,
    /// The bytes read and not yet written. Empty (no memory) until the
    /// file's turn to be read comes.
    lines: Lines,
    /// For a rotated file: since when it has given no new byte (None for
    /// the newest).
    quiet_since: Option<Instant>,
    /// Seen renamed away from the name (inotify).
    moved: bool,
    /// Bytes were read from it (the app writes to it).
    fed: bool,
}

#[derive(Clone, Copy)]
enum Piece {
    Prefix,
    Bytes(usize, usize),
    Newline,
}

/// How far [`Generation::pump`] got.
enum Step {
    /// Work is left: the output did not take a batch, or the slice is used.
    Pending,
    /// The file is read to its end and its whole lines written.
    AtEnd,
    /// Reading failed (the OS's reason): the file is dropped.
    Failed(String),
}

impl Follower {
    /// True while a rotated file is held beside the newest.
    fn held(&self) -> bool {
        self.gens.len() > 1
    }

    /// Opens the file under the name (if it exists and is not one already
    /// read), at its end or (`from_start`, for a file that appeared after
    /// the start) at its beginning, as the newest file of this name.
    fn open(&mut self, creds: &Creds, from_start: bool) {
        let (mut file, id) = match creds.open_regular(&self.path) {
            Ok(opened) => opened,
            Err(e) if e.absent() => return,
            Err(e) => return self.warn(e.desc()),
        };
        if self.gens.iter().any(|g| g.id == id) {
            return;
        }
        let offset = if from_start {
            0
        } else {
            match file.seek(SeekFrom::End(0)) {
                Ok(end) => end,
                Err(e) => return self.warn(&exit::reason(&e)),
            }
        };
        let at = self.gens.len();
        self.insert(at, Generation::new(file, id, offset));
    }

    /// After an event named the file: opens it if it is a file not read
    /// yet (the first, or a new one after a rotation).
    fn check_path(&mut self, creds: &Creds) {
        self.check = false;
        match creds.stat(&self.path) {
            Ok(meta) if self.gens.iter().any(|g| g.id == (meta.dev(), meta.ino())) => {}
            Ok(_) => self.open(creds, true),
            // Gone for now (renamed away or deleted): the open file is read
            // on until a new one appears under the name.
            Err(Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(e) => self.warn(e.desc()),
        }
    }

    /// The file renamed away from the name is at `to` now: if it is not one
    /// already read (it was renamed before envinit looked), it is read from
    /// its start, in its place among the others.
    fn moved_to(&mut self, to: &Path, creds: &Creds) {
        let (file, id) = match creds.open_regular(to) {
            Ok(opened) => opened,
            Err(e) if e.absent() => return,
            Err(e) => return self.warn(e.desc()),
        };
        if let Some(known) = self.gens.iter_mut().find(|g| g.id == id) {
            known.moved = true;
            return;
        }
        if self.dropped.contains(&id) {
            // Read already, and dropped before this rename was seen.
            return;
        }
        // It left the name before the newest came there, unless the newest
        // too left it already (then this one came after it).
        let at = match self.gens.last() {
            Some(newest) if !newest.moved => self.gens.len() - 1,
            _ => self.gens.len(),
        };
        let mut generation = Generation::new(file, id, 0);
        generation.moved = true;
        self.insert(at, generation);
    }

    /// Adds a file at `at`; every file but the newest counts as rotated
    /// (quiet from now if it was not before). Beyond [`MAX_GENERATIONS`],
    /// the oldest is dropped.
    fn insert(&mut self, at: usize, generation: Generation) {
        let now = Instant::now();
        if self.gens.len() >= MAX_GENERATIONS {
            warn(
                "a --stdout/--stderr file rotates faster than it is copied: the oldest rotated one is dropped",
                &self.path,
                "too many held",
            );
            self.drop_oldest(0);
        }
        let at = at.min(self.gens.len());
        self.gens.insert(at, generation);
        let newest = self.gens.len() - 1;
        for (i, generation) in self.gens.iter_mut().enumerate() {
            match i == newest {
                true => generation.quiet_since = None,
                false => {
                    generation.quiet_since.get_or_insert(now);
                }
            }
        }
    }

    /// Writes what is held and reads more, oldest file first, until each
    /// file is at its end, the output cannot take more, or `limit` bytes
    /// were read from a file. A rotated file at its end is dropped once the
    /// app writes to a newer one and it has been quiet for `wait` (at once
    /// while draining: `wait` None, with a zero `wait`, or when a third
    /// file waits). Returns whether work is left.
    fn pump(&mut self, sink: &mut Sink, wait: Option<Duration>, limit: usize) -> bool {
        let mut i = 0;
        while i < self.gens.len() {
            let newest = i + 1 == self.gens.len();
            // A third file waits: the oldest goes once read to its end.
            let crowded = self.gens.len() > 2;
            // An app that never reopens its log (a postrotate that failed)
            // writes the rotated file on: it is held while no newer file
            // has a line.
            let moved_on = self.gens[i + 1..].iter().any(|g| g.fed);
            let generation = &mut self.gens[i];
            let before = generation.offset;
            let step = generation.pump(sink, wait.is_none(), limit, &self.prefix);
            if generation.offset != before && generation.quiet_since.is_some() {
                generation.quiet_since = Some(Instant::now());
            }
            match step {
                Step::Pending => return true,
                Step::Failed(error) => {
                    self.warn(&error);
                    self.drop_oldest(i);
                    continue;
                }
                Step::AtEnd if newest => return false,
                Step::AtEnd => {}
            }
            // A rotated file read to its end: done with it?
            let done = match (wait, generation.quiet_since) {
                (None, _) | (_, None) => true,
                _ if crowded => true,
                (Some(wait), _) if wait.is_zero() => true,
                (Some(wait), Some(since)) => moved_on && since.elapsed() >= wait,
            };
            if !done {
                // Still held: the newer file's lines may go meanwhile.
                i += 1;
                continue;
            }
            generation.lines.flush_partial = true;
            if !generation
                .lines
                .write_lines(sink, wait.is_none(), &self.prefix)
            {
                return true;
            }
            self.drop_oldest(i);
        }
        false
    }

    /// Closes the file at `i` (the oldest being read), remembering it as
    /// read.
    fn drop_oldest(&mut self, i: usize) {
        let gone = self.gens.remove(i);
        if self.dropped.len() == MAX_GENERATIONS {
            self.dropped.remove(0);
            self.dropped_before = self.dropped_before.saturating_sub(1);
        }
        self.dropped.push(gone.id);
    }

    /// One warning per followed name, ever.
    fn warn(&mut self, error: &str) {
        if !self.warned {
            self.warned = true;
            warn(
                "cannot read a --stdout/--stderr file: its lines are not copied",
                &self.path,
                error,
            );
        }
    }
}

impl Generation {
    fn new(file: File, id: FileId, offset: u64) -> Generation {
        Generation {
            file,
            id,
            offset,
            lines: Lines::default(),
            quiet_since: None,
            moved: false,
            fed: false,
        }
    }

    /// Writes what is held and reads more, until the file is at its end,
    /// the output cannot take more, or `limit` bytes were read. `wait`:
    /// wait for the output (the final drain).
    fn pump(&mut self, sink: &mut Sink, wait: bool, limit: usize, prefix: &[u8]) -> Step {
        // This file's turn to be read: its buffer, now.
        self.lines.reserve(LINE_MAX);
        let mut read = 0;
        loop {
            if !self.lines.write_lines(sink, wait, prefix) {
                return Step::Pending;
            }
            if read >= limit {
                return Step::Pending;
            }
            match self.file.read(self.lines.room()) {
                Ok(0) => {
                    if !self.at_end(read == 0) {
                        return Step::AtEnd;
                    }
                }
                Ok(n) => {
                    self.lines.end += n;
                    self.offset += n as u64;
                    self.fed = true;
                    read += n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::AtEnd,
                Err(e) => return Step::Failed(exit::reason(&e)),
            }
        }
    }

    /// At the end of the file: starts over after a truncation. Returns
    /// whether to read on.
    ///
    /// Truncation is looked for (one fstat) only when this wake-up found
    /// nothing new (`idle`): truncating a file is itself a change that
    /// wakes envinit, which then finds nothing at its offset. A file
    /// streaming lines costs no fstat per wake-up.
    fn at_end(&mut self, idle: bool) -> bool {
        if !idle {
            return false;
        }
        match self.file.metadata() {
            Ok(meta) if meta.len() < self.offset => match self.file.seek(SeekFrom::Start(0)) {
                Ok(_) => {
                    self.offset = 0;
                    self.lines.flush_partial = true;
                    self.lines.split = false;
                    true
                }
                Err(_) => false,
            },
            _ => false,
        }
    }
}

/// Bytes read and not yet written, and the writing of them as whole lines
/// (shared with the processes' output, `--proc-prefix`).
#[derive(Default)]
pub(crate) struct Lines {
    /// `buf[start..end]` is read and not yet written.
    buf: Box<[u8]>,
    start: usize,
    /// Where the next read goes.
    pub(crate) end: usize,
    /// Write the held partial line (a newline added) before reading on.
    pub(crate) flush_partial: bool,
    /// The last piece written was a full buffer, split off a longer line:
    /// a `\n` right after it ends that line, it is no empty line.
    split: bool,
}

impl Lines {
    /// A buffer of `size` bytes, if there is none yet.
    pub(crate) fn reserve(&mut self, size: usize) {
        if self.buf.is_empty() {
            self.buf = vec![0; size].into_boxed_slice();
        }
    }

    /// The free space after what is held (moved to the front first).
    pub(crate) fn room(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Writes the complete lines held, in batches of at most PIPE_BUF bytes
    /// (a longer line alone). A full buffer without a newline is written as
    /// one split line; with `flush_partial`, so is the last partial line.
    /// Returns false when the output could not take a batch now.
    pub(crate) fn write_lines(&mut self, sink: &mut Sink, wait: bool, prefix: &[u8]) -> bool {
        loop {
            if self.split && self.start < self.end {
                // The byte after a piece split off a long line: its `\n`
                // ends that line, which already went out with one.
                self.split = false;
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
            }
            let full = self.start == 0 && self.end == self.buf.len();
            let mut pieces = [Piece::Newline; MAX_PIECES];
            let (mut count, mut size, mut pos) = (0, 0, self.start);
            let mut split = false;
            while pos < self.end {
                let rest = &self.buf[pos..self.end];
                let room = PIPE_BUF.saturating_sub(size);
                // Without a prefix, all the whole lines that fit go at once.
                let fitting = match prefix.is_empty() {
                    true => last_newline(&rest[..rest.len().min(room)]),
                    false => None,
                };
                let (len, add_newline) = match fitting.or_else(|| first_newline(rest)) {
                    Some(i) => (i + 1, false),
                    None if full || self.flush_partial => (rest.len(), true),
                    None => break,
                };
                let line = prefix.len() + len + usize::from(add_newline);
                if count > 0 && (size + line > PIPE_BUF || count + 3 > MAX_PIECES) {
                    break;
                }
                if !prefix.is_empty() {
                    pieces[count] = Piece::Prefix;
                    count += 1;
                }
                match count.checked_sub(1).map(|last| &mut pieces[last]) {
                    // Lines next to each other in the buffer go as one piece.
                    Some(Piece::Bytes(_, end)) if *end == pos => *end = pos + len,
                    _ => {
                        pieces[count] = Piece::Bytes(pos, pos + len);
                        count += 1;
                    }
                }
                if add_newline {
                    pieces[count] = Piece::Newline;
                    count += 1;
                    split = full;
                }
                size += line;
                pos += len;
            }
            if count == 0 {
                self.flush_partial = false;
                return true;
            }
            if !sink.dead && !sink.ready(wait) {
                return false;
            }
            if !sink.dead {
                let mut iov = [IoSlice::new(&[]); MAX_PIECES];
                for (slot, piece) in iov.iter_mut().zip(&pieces[..count]) {
                    *slot = IoSlice::new(match piece {
                        Piece::Prefix => prefix,
                        Piece::Bytes(a, b) => &self.buf[*a..*b],
                        Piece::Newline => b"\n",
                    });
                }
                sink.write(&mut iov[..count]);
            }
            self.start = pos;
            self.split = split;
        }
    }
}

/// envinit's stdout or stderr, as the followed files' lines go out.
pub(crate) struct Sink {
    fd: RawFd,
    name: &'static str,
    /// What is dropped when writing fails, for the warning.
    what: &'static str,
    /// Writing failed for good: lines for it are dropped.
    pub(crate) dead: bool,
}

impl Sink {
    /// Lines going to `fd` (`name`: stdout or stderr); `what` says what
    /// they are in the warning when writing fails for good.
    pub(crate) fn new(fd: RawFd, name: &'static str, what: &'static str) -> Sink {
        Sink {
            fd,
            name,
            what,
            dead: false,
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: stdout and stderr (or a test's pipe) stay open for the
        // whole run: envinit never closes them. Were one closed when
        // envinit started, calls on it fail with EBADF, which is handled.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Can the output take a batch now (or, with `wait`, within a few
    /// seconds)? Errors and hang-ups count as ready: the write reports them.
    pub(crate) fn ready(&mut self, wait: bool) -> bool {
        let timeout = if wait {
            PollTimeout::from(DRAIN_WAIT_MS)
        } else {
            PollTimeout::ZERO
        };
        let mut fds = [PollFd::new(self.fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, timeout) {
            Ok(0) if wait => {
                self.fail("it accepted nothing for 5 s");
                true
            }
            Ok(0) | Err(Errno::EINTR) => false,
            Ok(_) | Err(_) => true,
        }
    }

    /// Writes the whole batch, or gives up on this output with one warning.
    fn write(&mut self, mut iov: &mut [IoSlice<'_>]) {
        while !iov.is_empty() {
            match writev(self.fd(), &*iov) {
                Ok(0) => return self.fail("it accepted nothing"),
                Ok(n) => IoSlice::advance_slices(&mut iov, n),
                Err(Errno::EINTR) => {}
                // A non-blocking output (set so by whoever started envinit).
                Err(Errno::EAGAIN) => {
                    if !self.ready(true) || self.dead {
                        return;
                    }
                }
                Err(Errno::EPIPE) => {
                    // The kernel also queued a SIGPIPE for envinit, which
                    // must not reach the app.
                    crate::signals::intake::discard_own_sigpipe();
                    return self.fail(Errno::EPIPE.desc());
                }
                Err(e) => return self.fail(e.desc()),
            }
        }
    }

    fn fail(&mut self, why: &str) {
        self.dead = true;
        tracing::warn!(
            output = self.name,
            error = why,
            "cannot write the lines of {}: they are dropped from now on",
            self.what
        );
    }
}

/// What the sinks of the followed files carry, for their warning.
const FILES: &str = "the --stdout/--stderr files";

/// Every warning of this module, through one call site (each costs size):
/// what happened, to which path (or output), and the OS's reason.
fn warn(what: &str, path: &Path, error: &str) {
    tracing::warn!(path = %path.display(), error, "{what}");
}

/// Where the first `\n` of `bytes` is (musl's memchr reads a word at a
/// time: the search is most of the work per byte copied).
fn first_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: memchr reads at most `bytes.len()` bytes from the start of
    // the slice, and returns null or a pointer into it.
    let found = unsafe { libc::memchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

/// Where the last `\n` of `bytes` is.
fn last_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: as for memchr, searching backwards from the end.
    let found = unsafe { libc::memrchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd};

    /// A pipe for the outputs, read back without blocking.
    struct Output {
        read: File,
        write: OwnedFd,
        got: Vec<u8>,
    }

    impl Output {
        fn new() -> Output {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
            // Room for everything a test writes before reading it back.
            nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20)).unwrap();
            Output {
                read: File::from(read),
                write,
                got: Vec::new(),
            }
        }

        fn text(&mut self) -> String {
            let mut chunk = [0u8; 65536];
            loop {
                match self.read.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => self.got.extend_from_slice(&chunk[..n]),
                    Err(_) => break,
                }
            }
            String::from_utf8_lossy(&self.got).into_owned()
        }
    }

    struct Setup {
        dir: PathBuf,
        out: Output,
        err: Output,
        followers: Followers,
    }

    impl Drop for Setup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("envinit-follow-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn setup(name: &str, before: impl FnOnce(&Path), stdout: &[&str], prefix: bool) -> Setup {
        setup_waiting(name, before, stdout, prefix, ROTATE_WAIT_MS)
    }

    fn setup_waiting(
        name: &str,
        before: impl FnOnce(&Path),
        stdout: &[&str],
        prefix: bool,
        rotate_wait_ms: u32,
    ) -> Setup {
        let dir = scratch(name);
        before(&dir);
        let out = Output::new();
        let err = Output::new();
        let settings = FollowSettings {
            stdout: stdout.iter().map(|p| dir.join(p)).collect(),
            stderr: vec![dir.join("err.log")],
            prefix,
            rotate_wait_ms,
        };
        let followers = Followers::start_to(
            &settings,
            Creds::own(),
            [out.write.as_raw_fd(), err.write.as_raw_fd()],
        );
        Setup {
            dir,
            out,
            err,
            followers,
        }
    }

    fn append(path: &Path, text: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text).unwrap();
    }

    #[test]
    fn paths_must_name_a_file() {
        assert!(parse_path("/var/log/app.log").is_ok());
        assert!(parse_path("app.log").is_ok());
        for bad in ["/", "/var/log/", "..", "a/.."] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_files_means_nothing_to_poll() {
        let followers = Followers::start(&FollowSettings::default(), None);
        assert!(followers.0.is_none());
        let (r, _w) = nix::unistd::pipe().unwrap();
        let mut fds = [
            PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN),
            PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN),
        ];
        assert_eq!(followers.poll_fds(&mut fds), 0);
    }

    #[test]
    fn existing_lines_are_skipped_and_new_ones_copied() {
        let mut s = setup(
            "existing",
            |d| std::fs::write(d.join("a.log"), "old\n").unwrap(),
            &["a.log"],
            false,
        );
        append(&s.dir.join("a.log"), b"one\ntwo\npart");
        s.followers.on_ready();
        assert_eq!(s.out.text(), "one\ntwo\n");
        append(&s.dir.join("a.log"), b"ial\n");
        s.followers.on_ready();
        assert_eq!(s.out.text(), "one\ntwo\npartial\n");
        append(&s.dir.join("a.log"), b"last without newline");
        s.followers.drain();
        assert_eq!(s.out.text(), "one\ntwo\npartial\nlast without newline\n");
        assert_eq!(s.err.text(), "");
    }

    #[test]
    fn created_rotated_and_truncated_files_lose_and_repeat_nothing() {
        // --rotate-wait 0: the old file is read to its end, then dropped.
        let mut s = setup_waiting("rotate", |_| {}, &["a.log"], false, 0);
        let path = s.dir.join("a.log");
        append(&path, b"1\n2\n");
        s.followers.on_ready();
        // Rename away, keep writing to the old file, then re-create.
        std::fs::rename(&path, s.dir.join("a.log.1")).unwrap();
        append(&s.dir.join("a.log.1"), b"3\n4");
        append(&path, b"5\n");
        s.followers.on_ready();
        assert_eq!(s.out.text(), "1\n2\n3\n4\n5\n");
        assert!(!s.followers.0.as_ref().unwrap().files[0].held());
        assert_eq!(s.followers.deadline(), None);
        // Truncate and write less than was there.
        std::fs::write(&path, b"").unwrap();
        s.followers.on_ready();
        append(&path, b"6\n");
        s.followers.on_ready();
        // Delete and re-create.
        std::fs::remove_file(&path).unwrap();
        append(&path, b"7\n");
        s.followers.drain();
        assert_eq!(s.out.text(), "1\n2\n3\n4\n5\n6\n7\n");
    }

    #[test]
    fn a_missing_directory_is_waited_for() {
        let mut s = setup("missing-dir", |_| {}, &["sub/deeper/a.log"], false);
        std::fs::create_dir_all(s.dir.join("sub/deeper")).unwrap();
        s.followers.on_ready();
        append(&s.dir.join("sub/deeper/a.log"), b"hello\n");
        s.followers.on_ready();
        assert_eq!(s.out.text(), "hello\n");
    }

    #[test]
    fn long_lines_are_split_and_prefixes_added() {
        let mut s = setup("long", |_| {}, &["a.log"], true);
        let long = vec![b'x'; LINE_MAX * 2 + 10];
        let mut text = long.clone();
        text.extend_from_slice(b"\nshort\n");
        append(&s.dir.join("a.log"), &text);
        append(&s.dir.join("err.log"), b"oops\n");
        s.followers.drain();
        let out = s.out.text();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.len(),
            4,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert!(lines.iter().all(|l| l.starts_with("a.log: ")));
        let joined: String = lines[..3].iter().map(|l| &l["a.log: ".len()..]).collect();
        assert_eq!(joined.as_bytes(), &long[..]);
        assert_eq!(lines[0].len(), "a.log: ".len() + LINE_MAX);
        assert_eq!(lines[3], "a.log: short");
        assert_eq!(s.err.text(), "err.log: oops\n");
    }

    #[test]
    fn batches_stay_within_pipe_buf_and_whole_lines() {
        let mut s = setup("batches", |_| {}, &["a.log"], false);
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("line {i}\n"));
        }
        append(&s.dir.join("a.log"), text.as_bytes());
        s.followers.drain();
        assert_eq!(s.out.text(), text);
    }

    #[test]
    fn an_unreadable_path_warns_and_is_skipped() {
        let mut s = setup(
            "unreadable",
            |d| std::fs::create_dir(d.join("a.log")).unwrap(),
            &["a.log", "b.log"],
            false,
        );
        append(&s.dir.join("b.log"), b"b\n");
        s.followers.on_ready();
        s.followers.drain();
        assert_eq!(s.out.text(), "b\n");
        let active = s.followers.0.as_ref().unwrap();
        assert!(active.files[0].warned);
        assert!(!active.files[1].warned);
    }

    fn held(s: &Setup) -> usize {
        s.followers.0.as_ref().unwrap().files[0].gens.len()
    }

    #[test]
    fn a_rotated_file_is_read_on_until_it_has_been_quiet() {
        let mut s = setup("rotate-wait", |_| {}, &["a.log"], false);
        let (path, old) = (s.dir.join("a.log"), s.dir.join("a.log.1"));
        append(&path, b"1\n");
        s.followers.on_ready();
        assert_eq!(s.followers.deadline(), None, "no wake-up while idle");
        // logrotate's create mode: rename, create, and the app writes on to
        // the renamed file until it reopens its log.
        std::fs::rename(&path, &old).unwrap();
        append(&path, b"");
        append(&old, b"2\n3");
        s.followers.on_ready();
        append(&path, b"new 1\n");
        append(&old, b"\n4\n");
        s.followers.on_ready();
        // The old file's lines first, whole: "3" waited for its end.
        assert_eq!(s.out.text(), "1\n2\n3\n4\nnew 1\n");
        assert_eq!(held(&s), 2);
        let deadline = s.followers.deadline().expect("a deadline while held");
        assert!(deadline > Instant::now() + Duration::from_secs(4));
        // Quiet for the whole rotate-wait (as if 5 s had passed): dropped.
        let active = s.followers.0.as_mut().unwrap();
        active.files[0].gens[0].quiet_since =
            Some(Instant::now() - Duration::from_millis(ROTATE_WAIT_MS.into()));
        append(&old, b"5\n");
        s.followers.on_ready();
        assert_eq!(held(&s), 2, "a new line restarts the quiet period");
        let active = s.followers.0.as_mut().unwrap();
        active.files[0].gens[0].quiet_since =
            Some(Instant::now() - Duration::from_millis(ROTATE_WAIT_MS.into()));
        s.followers.on_ready();
        assert_eq!(held(&s), 1);
        assert_eq!(s.followers.deadline(), None);
        append(&old, b"too late\n");
        append(&path, b"new 2\n");
        s.followers.drain();
        assert_eq!(s.out.text(), "1\n2\n3\n4\nnew 1\n5\nnew 2\n");
    }

    #[test]
    fn a_held_file_is_drained_at_the_end_with_its_last_partial_line() {
        let mut s = setup("rotate-drain", |_| {}, &["a.log"], false);
        let (path, old) = (s.dir.join("a.log"), s.dir.join("a.log.1"));
        append(&path, b"1\n");
        s.followers.on_ready();
        std::fs::rename(&path, &old).unwrap();
        append(&path, b"new\n");
        s.followers.on_ready();
        append(&old, b"2\nno newline");
        s.followers.drain();
        assert_eq!(s.out.text(), "1\nnew\n2\nno newline\n");
    }

    #[test]
    fn files_renamed_away_before_they_were_seen_are_read_too() {
        let mut s = setup("rotate-unseen", |_| {}, &["a.log"], false);
        let path = s.dir.join("a.log");
        // Three generations before envinit looks at all: the first two are
        // only found where the renames took them.
        for g in 1..=3 {
            append(&path, format!("{g}a\n{g}b\n").as_bytes());
            if g < 3 {
                std::fs::rename(&path, s.dir.join(format!("a.log.{g}"))).unwrap();
            }
        }
        s.followers.on_ready();
        s.followers.on_ready();
        assert_eq!(s.out.text(), "1a\n1b\n2a\n2b\n3a\n3b\n");
        // And one found after the newest was opened already.
        std::fs::rename(&path, s.dir.join("a.log.3")).unwrap();
        append(&path, b"4\n");
        std::fs::rename(&path, s.dir.join("a.log.4")).unwrap();
        append(&path, b"5\n");
        s.followers.drain();
        assert_eq!(s.out.text(), "1a\n1b\n2a\n2b\n3a\n3b\n4\n5\n");
    }

    #[test]
    fn too_many_held_files_drop_the_oldest() {
        let mut s = setup("rotate-many", |_| {}, &["a.log"], false);
        let path = s.dir.join("a.log");
        append(&path, b"");
        s.followers.on_ready();
        // Rotations seen, but nothing read meanwhile (as when the output
        // takes nothing): the held files pile up to the bound.
        for g in 0..MAX_GENERATIONS + 2 {
            std::fs::rename(&path, s.dir.join(format!("a.log.{g}"))).unwrap();
            append(&path, format!("{g}\n").as_bytes());
            s.followers.0.as_mut().unwrap().files[0].check_path(&Creds::own());
        }
        assert_eq!(held(&s), MAX_GENERATIONS);
        // So many held: no events are taken (nor polled for) meanwhile.
        assert!(s.followers.0.as_ref().unwrap().stalled());
        let (r, _w) = nix::unistd::pipe().unwrap();
        let mut fds = [
            PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN),
            PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN),
            PollFd::new(std::os::fd::AsFd::as_fd(&r), PollFlags::POLLIN),
        ];
        assert_eq!(s.followers.poll_fds(&mut fds), 0);
        s.followers.drain();
        let text = s.out.text();
        assert!(
            text.ends_with(&format!("{}\n", MAX_GENERATIONS + 1)),
            "{text}"
        );
        assert_eq!(text.lines().count(), MAX_GENERATIONS, "{text}");
    }

    #[test]
    fn a_line_of_exactly_n_buffers_adds_no_empty_line() {
        for prefix in [false, true] {
            let mut s = setup("exact", |_| {}, &["a.log"], prefix);
            let path = s.dir.join("a.log");
            let mut text = vec![b'x'; LINE_MAX];
            text.extend_from_slice(b"\n");
            text.extend_from_slice(&vec![b'y'; 2 * LINE_MAX]);
            text.extend_from_slice(b"\nafter\n");
            // Written in pieces, so the `\n` comes in a read of its own too.
            append(&path, &text[..LINE_MAX]);
            s.followers.on_ready();
            append(&path, &text[LINE_MAX..]);
            s.followers.drain();
            let out = s.out.text();
            let lens: Vec<usize> = out.lines().map(str::len).collect();
            let p = if prefix { "a.log: ".len() } else { 0 };
            assert_eq!(
                lens,
                [LINE_MAX + p, LINE_MAX + p, LINE_MAX + p, 5 + p],
                "prefix {prefix}"
            );
        }
    }

    #[test]
    fn a_file_dropped_before_its_rename_was_seen_is_not_read_again() {
        // --rotate-wait 0: the old file goes as soon as it is read to its
        // end, which may be before the event of its rename is taken.
        let mut s = setup_waiting("rotate-dropped", |_| {}, &["a.log"], false, 0);
        let path = s.dir.join("a.log");
        append(&path, b"1\n");
        s.followers.on_ready();
        std::fs::rename(&path, s.dir.join("a.log.1")).unwrap();
        append(&path, b"2\n");
        // The name looked at, and both files read, before any event.
        let active = s.followers.0.as_mut().unwrap();
        active.files[0].check_path(&Creds::own());
        active.pump_all(false);
        assert_eq!(held(&s), 1);
        s.followers.on_ready();
        s.followers.drain();
        assert_eq!(s.out.text(), "1\n2\n");
    }

    #[test]
    fn a_rotated_file_is_held_while_the_app_writes_nothing_newer() {
        // A postrotate that did not reach the app (Debian's `invoke-rc.d
        // nginx rotate` in a container without an init system): the app
        // writes the renamed file on, the new one stays empty.
        let mut s = setup("rotate-never-reopened", |_| {}, &["a.log"], false);
        let (path, old) = (s.dir.join("a.log"), s.dir.join("a.log.1"));
        append(&path, b"1\n");
        s.followers.on_ready();
        std::fs::rename(&path, &old).unwrap();
        append(&path, b"");
        append(&old, b"2\n");
        s.followers.on_ready();
        assert_eq!(
            s.followers.deadline(),
            None,
            "no wake-up: nothing to wait for"
        );
        let active = s.followers.0.as_mut().unwrap();
        let long_ago = Instant::now() - Duration::from_secs(3600);
        active.files[0].gens[0].quiet_since = Some(long_ago);
        s.followers.on_ready();
        assert_eq!(held(&s), 2, "still held: the app writes nothing newer");
        append(&old, b"3\n");
        s.followers.on_ready();
        // Once the app writes the new file, the old one goes when quiet.
        append(&path, b"new\n");
        s.followers.on_ready();
        assert!(s.followers.deadline().is_some());
        let active = s.followers.0.as_mut().unwrap();
        active.files[0].gens[0].quiet_since = Some(long_ago);
        s.followers.on_ready();
        assert_eq!(held(&s), 1);
        assert_eq!(s.out.text(), "1\n2\n3\nnew\n");
    }
}
