//! Follow: copies the lines an app writes to log files (`--stdout FILE`,
//! `--stderr FILE`) to envinit's own stdout or stderr, as `tail -F` would,
//! for apps that can only log to files. docs/options.md, "Log files".
//!
//! It owns one inotify instance (a watch on each file's directory), the open
//! files, and a fixed line buffer per file. It runs no thread: the
//! supervisor adds [`Followers::poll_fds`] to its one poll, calls
//! [`Followers::on_ready`] after every wake-up, and [`Followers::drain`]
//! once the app and everything else have exited.
//!
//! Promises:
//! - Nothing at all (no inotify instance, no allocation, no system call)
//!   when no file is given.
//! - Every complete line goes out in one write. Lines are batched up to
//!   PIPE_BUF (4096 bytes) per write, which a pipe never interleaves with
//!   the app's own output; a single longer line is still one write.
//! - Lines already in a file when envinit starts are not copied (a
//!   restarted container would repeat them); a file that appears later is
//!   copied from its first byte.
//! - Rotation: when the name points to a new file (renamed away and
//!   re-created, or deleted and re-created), the old file is read to its
//!   end before the new one is followed. Truncation: a file that became
//!   shorter than what was read is read again from its start. No line
//!   written before the switch is lost or repeated.
//! - A line longer than [`LINE_MAX`] is split into pieces of that size,
//!   never dropped; at the end, a last line without a newline is copied
//!   with one added.
//! - Memory is bounded: one [`LINE_MAX`] buffer per file, whatever the file
//!   holds. The files themselves are the buffer while output waits.
//! - PID 1 never blocks on its own output while the app runs: a batch is
//!   written only when stdout or stderr can take it (poll), and a file that
//!   keeps growing is read in bounded slices between signals. A stdout
//!   that cannot be written any more (a closed pipe: EPIPE) drops the copies
//!   with one warning; the app is not disturbed.
//! - A file or directory that cannot be read or watched gives one warning;
//!   the app runs on. envinit never creates, changes or removes the files.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{ErrorKind, IoSlice, Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::uio::writev;

use crate::exit::Failure;
use crate::options::{Given, parse_bool};
use crate::signals::intake::Wakers;

/// The longest line copied whole; longer lines are split into pieces of
/// this size (each written as a line of its own). Also the size of each
/// file's buffer.
pub const LINE_MAX: usize = 64 * 1024;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowSettings {
    /// `--stdout FILE`: files whose lines go to envinit's stdout.
    pub stdout: Vec<PathBuf>,
    /// `--stderr FILE`: files whose lines go to envinit's stderr.
    pub stderr: Vec<PathBuf>,
    /// `--log-prefix`: start each copied line with `NAME: `, the file's name.
    pub prefix: bool,
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
    /// no line is missed). With no files this does nothing at all. Problems
    /// are warnings: the app starts anyway.
    pub fn start(settings: &FollowSettings) -> Followers {
        if settings.is_empty() {
            return Followers(None);
        }
        Followers::start_to(settings, [libc::STDOUT_FILENO, libc::STDERR_FILENO])
    }

    /// As [`Followers::start`], writing to `outputs` (stdout, stderr).
    fn start_to(settings: &FollowSettings, outputs: [RawFd; 2]) -> Followers {
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
            dirs: Vec::new(),
            files: Vec::new(),
            sinks: [
                Sink::new(outputs[0], "stdout"),
                Sink::new(outputs[1], "stderr"),
            ],
        };
        let cwd = std::env::current_dir().unwrap_or_default();
        for (sink, paths) in [(0, &settings.stdout), (1, &settings.stderr)] {
            for path in paths {
                active.add(cwd.join(path), sink, settings.prefix);
            }
        }
        for dir in &mut active.dirs {
            if let Err(e) = dir.resolve(&active.inotify) {
                dir.warn(e);
            }
        }
        for file in &mut active.files {
            file.open(false);
        }
        Followers(Some(Box::new(active)))
    }

    /// After a wake-up: takes the inotify events and copies what the files
    /// hold now, as far as the outputs take it without blocking.
    pub fn on_ready(&mut self) {
        if let Some(active) = &mut self.0 {
            active.take_events(false);
            active.pump_all(false);
        }
    }

    /// At the end, once every process is gone: copies everything the files
    /// hold (following a last rotation), then each last line without a
    /// newline. Waits for the outputs, up to 5 s each write.
    pub fn drain(&mut self) {
        if let Some(active) = &mut self.0 {
            active.take_events(true);
            for file in &mut active.files {
                file.check = true;
            }
            active.pump_all(true);
            for file in &mut active.files {
                file.flush_partial = true;
                file.write_lines(&mut active.sinks[file.sink], true);
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

    /// The fds the supervisor's poll should wait on besides its own, written
    /// to the front of `out` (which has room for 3); returns how many. The
    /// inotify fd (readable), and stdout or stderr (writable) while lines
    /// wait for them or a file was only partly read.
    fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize {
        let Some(active) = &self.0 else {
            return 0;
        };
        let mut wanted = [(active.inotify_fd(), PollFlags::POLLIN)]
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
}

struct Active {
    inotify: Inotify,
    dirs: Vec<Dir>,
    files: Vec<Follower>,
    /// stdout, stderr.
    sinks: [Sink; 2],
}

impl Active {
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
            file: None,
            id: (0, 0),
            offset: 0,
            buf: vec![0; LINE_MAX].into_boxed_slice(),
            start: 0,
            end: 0,
            flush_partial: false,
            rotated: false,
            check: false,
            dirty: false,
            pending: false,
            warned: false,
        });
    }

    /// Reads every queued inotify event and marks the files they concern:
    /// to read again (anything in their directory) and to look at their
    /// path again (their name created, moved, deleted or changed).
    fn take_events(&mut self, all: bool) {
        let mut rescan = false;
        // Read and parsed in place (nix's read_events allocates a vector
        // and a name per event): `struct inotify_event` is wd, mask,
        // cookie, len (4 bytes each), then `len` bytes of NUL-padded name.
        let mut buf = [0u8; 4096];
        loop {
            let read = match nix::unistd::read(self.inotify_fd(), &mut buf) {
                Ok(read) => read,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    warn(
                        "reading inotify events failed; carrying on",
                        Path::new("inotify"),
                        e.desc(),
                    );
                    break;
                }
            };
            let mut at = 0;
            while at + 16 <= read {
                let word = |i: usize| {
                    let b = &buf[at + i..at + i + 4];
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                };
                let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
                let name = &buf[(at + 16).min(read)..(at + 16 + len).min(read)];
                let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
                at += 16 + len;
                let event = Event {
                    wd,
                    mask: AddWatchFlags::from_bits_truncate(mask),
                    name,
                };
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: look at everything again.
                    for file in &mut self.files {
                        file.dirty = true;
                        file.check = true;
                    }
                    rescan = true;
                    continue;
                }
                for (d, dir) in self.dirs.iter_mut().enumerate() {
                    if dir.ancestor == Some(event.wd) && event.mask.intersects(APPEARED | DIR_GONE)
                    {
                        rescan = true;
                    }
                    if dir.wd != Some(event.wd) {
                        continue;
                    }
                    if event.mask.intersects(DIR_GONE) {
                        dir.wd = None;
                        rescan = true;
                    }
                    let renamed = event.mask.intersects(NAME_CHANGED | DIR_GONE);
                    for file in self.files.iter_mut().filter(|f| f.dir == d) {
                        // Also for other names: a file renamed away keeps
                        // reporting its writes under its new name.
                        file.dirty = true;
                        if renamed && (event.name.is_empty() || event.name == file.name.as_bytes())
                        {
                            file.check = true;
                        }
                    }
                }
            }
            // While running, one read per wake-up: events left over keep
            // the fd readable for the next poll.
            if !all {
                break;
            }
        }
        if rescan {
            for (d, dir) in self.dirs.iter_mut().enumerate() {
                if dir.wd.is_some() {
                    continue;
                }
                match dir.resolve(&self.inotify) {
                    Ok(()) if dir.wd.is_some() => {
                        for file in self.files.iter_mut().filter(|f| f.dir == d) {
                            file.dirty = true;
                            file.check = true;
                        }
                    }
                    Ok(()) => {}
                    Err(e) => dir.warn(e),
                }
            }
        }
    }

    /// Copies what each marked file holds, in slices while the app runs
    /// (`drain` false), or everything while draining at the end.
    fn pump_all(&mut self, drain: bool) {
        for file in &mut self.files {
            if file.check {
                file.check_path();
            }
            if self.sinks[file.sink].dead {
                // Nowhere to copy to: leave the files alone.
                file.pending = false;
                continue;
            }
            if drain || file.dirty || file.pending {
                file.dirty = false;
                let limit = if drain { DRAIN_MAX } else { SLICE };
                file.pending = file.pump(&mut self.sinks[file.sink], drain, limit);
            }
        }
    }
}

/// One inotify event, parsed in place.
struct Event<'a> {
    wd: i32,
    mask: AddWatchFlags,
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
}

impl Dir {
    /// Watches the directory, or its nearest existing ancestor. All watches
    /// share one mask (a directory may be one file's home and another's
    /// ancestor, and a second watch on it replaces the first's mask).
    fn resolve(&mut self, inotify: &Inotify) -> Result<(), Errno> {
        let mut at: &Path = &self.path;
        loop {
            let wd = match inotify.add_watch(at, WATCH) {
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
            match below {
                Some(below) if below.is_dir() => at = &self.path,
                _ => return Ok(()),
            }
        }
    }

    fn warn(&self, e: Errno) {
        warn(
            "cannot watch the directory of a --stdout/--stderr file: its lines are not followed",
            &self.path,
            e.desc(),
        );
    }
}

/// One followed file: its open file (if any), where reading stopped, and
/// the bytes read but not yet written.
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
    file: Option<File>,
    /// Device and inode of `file`, to see the name point elsewhere.
    id: (u64, u64),
    /// Bytes of `file` read so far.
    offset: u64,
    /// `buf[start..end]` is read and not yet written.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Write the held partial line (a newline added) before reading on.
    flush_partial: bool,
    /// The name points to another file now: switch once `file` is read to
    /// its end.
    rotated: bool,
    /// Look at the path again (an event named it).
    check: bool,
    /// Read again (an event in its directory).
    dirty: bool,
    /// Stopped with work left: the output did not take a batch, or the
    /// slice of this wake-up was used up.
    pending: bool,
    /// A warning was given for this file already.
    warned: bool,
}

#[derive(Clone, Copy)]
enum Piece {
    Prefix,
    Bytes(usize, usize),
    Newline,
}

impl Follower {
    /// Opens the file (if it exists), at its end or (`from_start`, for a
    /// file that appeared after the start) at its beginning.
    fn open(&mut self, from_start: bool) {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            // Never wait (a FIFO would block the open until a writer came).
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if absent(&e) => return,
            Err(e) => return self.warn(os_text(&e)),
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(e) => return self.warn(os_text(&e)),
        };
        if !meta.is_file() {
            return self.warn("not a regular file");
        }
        self.offset = if from_start {
            0
        } else {
            match file.seek(SeekFrom::End(0)) {
                Ok(end) => end,
                Err(e) => return self.warn(os_text(&e)),
            }
        };
        self.id = identity(&meta);
        self.file = Some(file);
    }

    /// After an event named the file: opens it if it was not open, or notes
    /// that the name points to a new file now (rotation).
    fn check_path(&mut self) {
        self.check = false;
        match std::fs::metadata(&self.path) {
            Ok(_) if self.file.is_none() => self.open(true),
            Ok(meta) if identity(&meta) != self.id => self.rotated = true,
            Ok(_) => {}
            // Gone for now (renamed away or deleted): the open file is read
            // on until a new one appears under the name.
            Err(e) if absent(&e) => {}
            Err(e) => self.warn(os_text(&e)),
        }
    }

    /// Writes what is held and reads more, until the file is at its end, the
    /// output cannot take more, or `limit` bytes were read. Returns whether
    /// work is left. `wait`: wait for the output (the final drain).
    fn pump(&mut self, sink: &mut Sink, wait: bool, limit: usize) -> bool {
        let mut read = 0;
        loop {
            if !self.write_lines(sink, wait) {
                return true;
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let Some(file) = &mut self.file else {
                return false;
            };
            if read >= limit {
                return true;
            }
            match file.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    if !self.at_end(read == 0) {
                        return false;
                    }
                }
                Ok(n) => {
                    self.end += n;
                    self.offset += n as u64;
                    read += n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.warn(os_text(&e));
                    self.file = None;
                    return false;
                }
            }
        }
    }

    /// At the end of the file: switches to the new file after a rotation, or
    /// starts over after a truncation. Returns whether to read on.
    ///
    /// Truncation is looked for (one fstat) only when this wake-up found
    /// nothing new (`idle`): truncating a file is itself a change that
    /// wakes envinit, which then finds nothing at its offset. A file
    /// streaming lines costs no fstat per wake-up.
    fn at_end(&mut self, idle: bool) -> bool {
        if self.rotated {
            self.rotated = false;
            self.flush_partial = true;
            self.file = None;
            self.open(true);
            return self.file.is_some();
        }
        let Some(file) = self.file.as_mut().filter(|_| idle) else {
            return false;
        };
        match file.metadata() {
            Ok(meta) if meta.len() < self.offset => match file.seek(SeekFrom::Start(0)) {
                Ok(_) => {
                    self.offset = 0;
                    self.flush_partial = true;
                    true
                }
                Err(e) => {
                    self.warn(os_text(&e));
                    false
                }
            },
            _ => false,
        }
    }

    /// Writes the complete lines held, in batches of at most PIPE_BUF bytes
    /// (a longer line alone). A full buffer without a newline is written as
    /// one split line; with `flush_partial`, so is the last partial line.
    /// Returns false when the output could not take a batch now.
    fn write_lines(&mut self, sink: &mut Sink, wait: bool) -> bool {
        loop {
            let full = self.start == 0 && self.end == self.buf.len();
            let mut pieces = [Piece::Newline; MAX_PIECES];
            let (mut count, mut size, mut pos) = (0, 0, self.start);
            while pos < self.end {
                let rest = &self.buf[pos..self.end];
                let room = PIPE_BUF.saturating_sub(size);
                // Without a prefix, all the whole lines that fit go at once.
                let fitting = match self.prefix.is_empty() {
                    true => last_newline(&rest[..rest.len().min(room)]),
                    false => None,
                };
                let (len, add_newline) = match fitting.or_else(|| first_newline(rest)) {
                    Some(i) => (i + 1, false),
                    None if full || self.flush_partial => (rest.len(), true),
                    None => break,
                };
                let line = self.prefix.len() + len + usize::from(add_newline);
                if count > 0 && (size + line > PIPE_BUF || count + 3 > MAX_PIECES) {
                    break;
                }
                if !self.prefix.is_empty() {
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
                        Piece::Prefix => &self.prefix,
                        Piece::Bytes(a, b) => &self.buf[*a..*b],
                        Piece::Newline => b"\n",
                    });
                }
                sink.write(&mut iov[..count]);
            }
            self.start = pos;
        }
    }

    /// One warning per file, ever.
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

/// envinit's stdout or stderr, as the followed files' lines go out.
struct Sink {
    fd: RawFd,
    name: &'static str,
    /// Writing failed for good: lines for it are dropped.
    dead: bool,
}

impl Sink {
    fn new(fd: RawFd, name: &'static str) -> Sink {
        Sink {
            fd,
            name,
            dead: false,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: stdout and stderr (or a test's pipe) stay open for the
        // whole run: envinit never closes them. Were one closed when
        // envinit started, calls on it fail with EBADF, which is handled.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Can the output take a batch now (or, with `wait`, within a few
    /// seconds)? Errors and hang-ups count as ready: the write reports them.
    fn ready(&mut self, wait: bool) -> bool {
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
        warn(
            "cannot write the lines of the --stdout/--stderr files: they are dropped from now on",
            Path::new(self.name),
            why,
        );
    }
}

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

fn identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Not there (yet): no such file, or a path component is not a directory.
fn absent(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// The OS's wording of an I/O error ("No such file or directory").
fn os_text(e: &std::io::Error) -> &'static str {
    e.raw_os_error()
        .map_or("I/O error", |code| Errno::from_raw(code).desc())
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
        let dir = scratch(name);
        before(&dir);
        let out = Output::new();
        let err = Output::new();
        let settings = FollowSettings {
            stdout: stdout.iter().map(|p| dir.join(p)).collect(),
            stderr: vec![dir.join("err.log")],
            prefix,
        };
        let followers =
            Followers::start_to(&settings, [out.write.as_raw_fd(), err.write.as_raw_fd()]);
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
        let followers = Followers::start(&FollowSettings::default());
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
        let mut s = setup("rotate", |_| {}, &["a.log"], false);
        let path = s.dir.join("a.log");
        append(&path, b"1\n2\n");
        s.followers.on_ready();
        // Rename away, keep writing to the old file, then re-create.
        std::fs::rename(&path, s.dir.join("a.log.1")).unwrap();
        append(&s.dir.join("a.log.1"), b"3\n4");
        append(&path, b"5\n");
        s.followers.on_ready();
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
}
