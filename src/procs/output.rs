//! The processes' output with `--proc-prefix`: each process writes its
//! stdout and stderr to a pipe of its own, and envinit copies the lines to
//! its own stdout and stderr, each line starting with the process's name
//! (`nginx   | GET / 200`, names padded to the longest).
//!
//! Promises:
//! - Whole lines only: every line goes out in one write with its prefix,
//!   batched up to PIPE_BUF bytes per write (as [`crate::follow`] writes
//!   them, with the same code), so lines of two processes (and envinit's
//!   own log lines) never interleave mid-line. A line longer than
//!   [`LINE`] bytes is split into pieces of that size, each a line of its
//!   own (Docker's json-file driver splits at 16 KiB too).
//! - PID 1 never blocks on its output while processes run: a batch is
//!   written only when stdout or stderr can take it; until then the pipe
//!   is not read, and a process writing more waits, as it would on a full
//!   stdout of its own. At most [`SLICE`] bytes are read from one pipe per
//!   wake-up, so a process that writes without pause does not keep signals
//!   waiting.
//! - A pipe outlives restarts: the process started again writes to the
//!   same one. At the end, once every process is gone, every pipe is read
//!   to its end and a last line without a newline gets one.
//! - Memory: one [`LINE`] buffer per pipe that has carried a byte.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags};

use crate::exit::{Failure, os_failure};
use crate::follow::{Lines, Sink};

/// The longest line copied whole, and each pipe's buffer.
pub const LINE: usize = 16 * 1024;

/// The most bytes read from one pipe per wake-up while processes run.
pub const SLICE: usize = 4 * LINE;

/// What the sinks carry, for their warning.
const WHAT: &str = "the processes' lines";

/// Every process's stdout and stderr pipes, and where their lines go.
pub struct Outputs {
    pipes: Vec<Pipe>,
    sinks: [Sink; 2],
}

struct Pipe {
    read: OwnedFd,
    write: Option<OwnedFd>,
    lines: Lines,
    /// `NAME | `, padded.
    prefix: Box<[u8]>,
    /// Stopped with work left: the output did not take a batch, or the
    /// slice of this wake-up was used up.
    pending: bool,
}

impl Outputs {
    /// Two pipes (stdout, stderr) for each of the processes `names`.
    pub fn new(names: &[&str]) -> Result<Outputs, Failure> {
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut pipes = Vec::with_capacity(2 * names.len());
        for name in names {
            let prefix = format!("{name:<width$} | ").into_bytes().into_boxed_slice();
            for _ in 0..2 {
                // Only envinit's end is non-blocking: the process's stdout
                // must block as any other would.
                let (read, write) = pipe().map_err(|e| os_failure("pipe for --proc-prefix", e))?;
                pipes.push(Pipe {
                    read,
                    write: Some(write),
                    lines: Lines::default(),
                    prefix: prefix.clone(),
                    pending: false,
                });
            }
        }
        Ok(Outputs {
            pipes,
            sinks: [
                Sink::new(libc::STDOUT_FILENO, "stdout", WHAT),
                Sink::new(libc::STDERR_FILENO, "stderr", WHAT),
            ],
        })
    }

    /// How many pipes there are: pipe `2i` is process `i`'s stdout,
    /// `2i + 1` its stderr.
    pub fn len(&self) -> usize {
        self.pipes.len()
    }

    /// True without pipes.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// The ends process `index` gets as stdout and stderr.
    pub fn ends(&self, index: usize) -> [RawFd; 2] {
        let end = |p: &Pipe| p.write.as_ref().map_or(-1, |w| w.as_raw_fd());
        [end(&self.pipes[2 * index]), end(&self.pipes[2 * index + 1])]
    }

    /// The end envinit reads of pipe `p`, to watch.
    pub fn source(&self, p: usize) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pipes[p].read.as_fd()
    }

    /// Pipe `p` has bytes: copy its whole lines as far as the output
    /// takes them now.
    pub fn ready(&mut self, p: usize) {
        let sink = &mut self.sinks[p % 2];
        self.pipes[p].pump(sink, false);
    }

    /// After every wake-up: the pipes with work left.
    pub fn on_ready(&mut self) {
        for (p, pipe) in self.pipes.iter_mut().enumerate() {
            if pipe.pending {
                pipe.pump(&mut self.sinks[p % 2], false);
            }
        }
    }

    /// stdout or stderr (writable), while lines wait for them; returns how
    /// many were written to `out`.
    pub fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize {
        let mut used = 0;
        for (s, sink) in self.sinks.iter().enumerate() {
            let waiting = self
                .pipes
                .iter()
                .enumerate()
                .any(|(p, pipe)| p % 2 == s && pipe.pending);
            if waiting && !sink.dead && used < out.len() {
                out[used] = PollFd::new(sink.fd(), PollFlags::POLLOUT);
                used += 1;
            }
        }
        used
    }

    /// At the end, once every process is gone: every pipe read to its end,
    /// each last line without a newline given one. Waits for the outputs,
    /// up to 5 s a write.
    pub fn drain(&mut self) {
        for (p, pipe) in self.pipes.iter_mut().enumerate() {
            // No process holds a write end any more: the last one closes.
            pipe.write = None;
            let sink = &mut self.sinks[p % 2];
            pipe.pump(sink, true);
            pipe.lines.flush_partial = true;
            pipe.lines.write_lines(sink, true, &pipe.prefix);
        }
    }
}

/// A close-on-exec pipe whose read end (the first) does not block. Raw
/// calls: nix's wrappers, used once on the one-process path, stay inlined
/// there (start-up instructions).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own; they are
    // new and ours alone; fcntl takes plain integers.
    unsafe {
        Errno::result(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC))?;
        let pair = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
        Errno::result(libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK))?;
        Ok(pair)
    }
}

impl Pipe {
    /// Writes what is held and reads more, until the pipe is empty, the
    /// output cannot take more, or (unless draining) [`SLICE`] bytes were
    /// read.
    fn pump(&mut self, sink: &mut Sink, drain: bool) {
        self.lines.reserve(LINE);
        let mut read = 0;
        self.pending = true;
        loop {
            if !self.lines.write_lines(sink, drain, &self.prefix) {
                return;
            }
            if read >= SLICE && !drain {
                return;
            }
            let room = self.lines.room();
            // SAFETY: the kernel writes at most `room.len()` bytes into the
            // slice, which we own.
            let got =
                unsafe { libc::read(self.read.as_raw_fd(), room.as_mut_ptr().cast(), room.len()) };
            match Errno::result(got) {
                Ok(0) => break,
                Ok(n) => {
                    self.lines.end += n as usize;
                    read += n as usize;
                }
                Err(Errno::EINTR) => {}
                // Empty (EAGAIN), or unreadable: nothing more now.
                Err(_) => break,
            }
        }
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_are_padded_and_each_process_has_two_pipes() {
        let out = Outputs::new(&["php-fpm", "web"]).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(&*out.pipes[2].prefix, b"web     | ");
        assert_eq!(&*out.pipes[1].prefix, b"php-fpm | ");
        let [o, e] = out.ends(1);
        assert!(o > 2 && e > 2 && o != e);
    }

    #[test]
    fn whole_lines_are_copied_with_the_prefix_and_the_last_one_completed() {
        let mut out = Outputs::new(&["a"]).unwrap();
        // Copy to a pipe of the test's instead of stdout.
        let (read, write) = nix::unistd::pipe().unwrap();
        out.sinks[0] = Sink::new(write.as_raw_fd(), "stdout", WHAT);
        let mut child = std::fs::File::from(out.pipes[0].write.take().unwrap());
        child.write_all(b"one\ntw").unwrap();
        out.ready(0);
        child.write_all(b"o\nthree").unwrap();
        out.ready(0);
        drop(child);
        out.drain();
        drop(out);
        drop(write);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut text).unwrap();
        assert_eq!(text, "a | one\na | two\na | three\n");
    }
}
