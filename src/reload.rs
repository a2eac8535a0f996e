//! Reload: the config rendered again while the app runs, and the app told
//! (docs/templates.md, "Reload"; docs/options.md, "Reload").
//!
//! With templates or ini targets, a reload is the render phase run again
//! from the supervision loop ([`crate::render::reload`]: every file
//! rendered from the current inputs, all or nothing, exactly as at start;
//! only the files whose DEST differs are written). What asks for one:
//!
//! - the reload signal (`--reload-signal`, SIGHUP by default), taken
//!   instead of forwarded;
//! - with `--watch`, a change in a directory a template, a secret or an
//!   `X_FILE` was read from (one inotify instance, a watch on each such
//!   directory, reached through [`crate::appfs::chase`]): the files
//!   replaced in place, renamed over, or behind Kubernetes' `..data`
//!   symlink swapped. A burst of changes is one reload, [`QUIET`] after
//!   the last (at most [`MAX_WAIT`] after the first);
//! - with `--watch-limits`, the container's memory and CPU limits, which
//!   no event announces, read again at that interval and found changed.
//!
//! What follows is the lifecycle's to decide (through [`ReloadTarget`],
//! which the one child's lifecycle and the table of several processes
//! answer): no reload once a stop has begun; when a
//! file's content changed, the app gets its reload signal; when nothing
//! changed, nothing, and one info line says so. A failed reload changes
//! nothing (no DEST touched, no staged file left), signals nobody, logs
//! one error line per problem, and supervision goes on.
//!
//! It runs no thread: the lifecycle takes the reload signal (the
//! supervisor tells it [`Reloader::signal`]), the supervisor calls
//! [`Reloader::on_ready`]
//! after each wake-up, and the
//! [`Reloader`]'s fd and deadline join its one poll through
//! [`crate::signals::intake::Wakers`]. Without templates there is no
//! `Reloader` at all, and the loop is the one it always was. With
//! templates but no `--watch` or `--watch-limits`, no fd and no deadline
//! are added: a wake-up is still one blocking read. With `--watch`,
//! nothing wakes envinit while nothing changes.

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::appfs::chase;
use crate::container::Facts;
use crate::exit::Failure;
use crate::options::{Given, parse_bool, parse_duration};
use crate::render::{self, RenderSettings, Written};
use crate::signals::{self, intake::Wakers};

/// How long after the last change of a burst a watched change is
/// rendered.
pub const QUIET: Duration = Duration::from_secs(1);

/// How long after the first change of a burst it is rendered at the
/// latest, however long the burst goes on.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// What a watched directory reports: a name created, written, renamed in
/// or out, removed, or its permissions changed; and the directory itself
/// removed or moved.
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

/// The reload options (docs/options.md, "Reload").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadSettings {
    /// `--reload-signal`: what asks for a reload (`None`: no signal does;
    /// it is forwarded as any other).
    pub signal: Option<i32>,
    /// `--app-reload-signal`: what the app gets after a reload that
    /// changed a file, as is (0: nothing); `None`: the reload signal
    /// (SIGHUP when it is `none`) as `--rewrite` makes it.
    pub app_signal: Option<i32>,
    /// `--watch`: reload when an input changes.
    pub watch: bool,
    /// `--watch-limits`: read the container's limits again this often.
    pub watch_limits: Option<Duration>,
}

/// The defaults: SIGHUP asks for a reload, the app gets it, nothing is
/// watched.
const DEFAULT: ReloadSettings = ReloadSettings {
    signal: Some(libc::SIGHUP),
    app_signal: None,
    watch: false,
    watch_limits: None,
};

impl Default for ReloadSettings {
    fn default() -> Self {
        DEFAULT
    }
}

impl ReloadSettings {
    /// `--reload-signal`, `--app-reload-signal`, `--watch`,
    /// `--watch-limits`.
    pub fn from_options(given: &mut Given) -> Result<ReloadSettings, Failure> {
        let mut s = ReloadSettings::default();
        if let Some(r) = given.take("reload-signal") {
            s.signal = r.parse_last(parse_signal_or_none)?.unwrap_or(s.signal);
        }
        if let Some(r) = given.take("app-reload-signal") {
            // `none`: 0, no signal.
            s.app_signal = r.parse_last(parse_signal_or_none)?.map(|s| s.unwrap_or(0));
        }
        if let Some(r) = given.take("watch") {
            s.watch = r.parse_last(parse_bool)?.unwrap_or(false);
        }
        if let Some(r) = given.take("watch-limits") {
            s.watch_limits = r.parse_last(parse_duration)?.filter(|d| !d.is_zero());
        }
        Ok(s)
    }
}

/// A signal, or `none`.
fn parse_signal_or_none(text: &str) -> Result<Option<i32>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    signals::parse(text).map(Some)
}

/// Reloads for a start that rendered files.
pub struct Reloader<'a> {
    render: &'a RenderSettings,
    owner: Option<(u32, u32)>,
    settings: &'a ReloadSettings,
    watch: Option<Watch>,
    /// `--watch-limits`: when to read the limits next.
    limits_at: Option<Instant>,
    /// The facts the last render used (`None`: it named none).
    facts: Option<Facts>,
    /// A watched change waits to be rendered: the first one's time, and
    /// when to render.
    burst: Option<(Instant, Instant)>,
}

impl<'a> Reloader<'a> {
    /// The reloads of a start whose render (`written`) used `render`, with
    /// `settings` (`None`: the defaults), or `None` when nothing asks for
    /// one (no signal, no watch).
    pub fn start(
        settings: Option<&'a ReloadSettings>,
        render: &'a RenderSettings,
        owner: Option<(u32, u32)>,
        written: Written,
    ) -> Option<Box<Reloader<'a>>> {
        let settings = settings.unwrap_or(&DEFAULT);
        if settings.signal.is_none() && !settings.watch && settings.watch_limits.is_none() {
            return None;
        }
        let watch = settings.watch.then(|| Watch::new(&written.dirs)).flatten();
        let limits_at = settings.watch_limits.map(|every| Instant::now() + every);
        Some(Box::new(Reloader {
            render,
            owner,
            settings,
            watch,
            limits_at,
            facts: written.facts,
            burst: None,
        }))
    }

    /// Renders again and acts on the outcome (see the module doc).
    fn reload(&mut self, why: &str, target: &mut dyn ReloadTarget) {
        if !target.may_reload() {
            return;
        }
        let started = Instant::now();
        match render::reload(self.render, self.owner) {
            Ok(written) => {
                let outcome = match written.written {
                    0 => "nothing changed, the app was not signalled",
                    _ => "files changed, the app gets its reload signal",
                };
                tracing::info!(
                    why,
                    changed = written.written,
                    took_us = started.elapsed().as_micros() as u64,
                    "config reloaded: {outcome}"
                );
                if written.written > 0 {
                    let signal = self.settings.signal.unwrap_or(libc::SIGHUP);
                    target.after_reload(signal, self.settings.app_signal);
                }
                self.facts = written.facts;
                if self.watch.is_some() {
                    let fresh = Watch::new(&written.dirs);
                    // Changes since the render waited in the old watches.
                    if self.watch.as_ref().is_some_and(Watch::changed) {
                        self.change(Instant::now());
                    }
                    self.watch = fresh;
                }
            }
            Err(failure) => {
                for problem in &failure.problems {
                    tracing::error!(
                        why,
                        "reload failed: {problem} (nothing was changed, the app was not signalled)"
                    );
                }
            }
        }
    }

    /// A watched change at `now`: the burst's render is [`QUIET`] later,
    /// at most [`MAX_WAIT`] after its first change.
    fn change(&mut self, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, (now + QUIET).min(first + MAX_WAIT)));
    }
}

impl Wakers for Reloader<'_> {
    fn active(&self) -> bool {
        self.watch.is_some() || self.limits_at.is_some()
    }

    fn poll_fds<'a>(&'a self, out: &mut [PollFd<'a>]) -> usize {
        match (&self.watch, out.first_mut()) {
            (Some(watch), Some(slot)) => {
                *slot = PollFd::new(watch.inotify.as_fd(), PollFlags::POLLIN);
                1
            }
            _ => 0,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.burst.map(|(_, at)| at), self.limits_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a reload needs of the supervision's decisions: the one child's
/// [`crate::lifecycle::Lifecycle`] or the table of several processes
/// ([`crate::lifecycle::team::Team`]), with the calls that signal them.
pub trait ReloadTarget {
    /// Whether the reload signal arrived since the last call (which clears
    /// it).
    fn take_reload_request(&mut self) -> bool;
    /// Whether a reload may run now (the app runs, no stop has begun).
    fn may_reload(&self) -> bool;
    /// A file's content changed: the app (or the processes named by
    /// `--proc-reload-signal`) get their reload signal: `explicit`
    /// (`--app-reload-signal`, 0 for none) or `signal` as `--rewrite`
    /// makes it.
    fn after_reload(&mut self, signal: i32, explicit: Option<i32>);
}

impl Reloader<'_> {
    /// The signal that asks for a reload (the lifecycle takes it instead of
    /// forwarding it).
    pub fn signal(&self) -> Option<i32> {
        self.settings.signal
    }

    /// After every wake-up: reloads when asked or due.
    pub fn on_ready(&mut self, target: &mut dyn ReloadTarget) {
        let changed = self.watch.as_ref().is_some_and(Watch::changed);
        let asked = target.take_reload_request();
        if !(asked || changed || self.burst.is_some() || self.limits_at.is_some()) {
            return;
        }
        let now = Instant::now();
        if changed {
            self.change(now);
        }
        if asked {
            self.burst = None;
            return self.reload("signal", target);
        }
        if self.burst.is_some_and(|(_, at)| now >= at) {
            self.burst = None;
            return self.reload("watch", target);
        }
        if let (Some(at), Some(every)) = (self.limits_at, self.settings.watch_limits) {
            if now >= at {
                self.limits_at = Some(now + every);
                let facts = Facts::detect().ok();
                if facts.is_some() && self.facts.is_some() && facts != self.facts {
                    self.reload("limits", target);
                }
            }
        }
    }
}

/// The inotify watches on the directories the inputs were read from.
struct Watch {
    inotify: Inotify,
    /// Each watch's descriptor.
    dirs: Vec<i32>,
}

impl Watch {
    /// Watches `dirs`, those that exist and are reached safely (through
    /// [`chase`]: the watch is added through the descriptor of the
    /// directory found and checked, `/proc/self/fd/N`, so nothing on the
    /// way is followed unsafely). `None` (after a warning) when no inotify
    /// instance can be made.
    fn new(dirs: &[PathBuf]) -> Option<Watch> {
        let inotify = match Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) {
            Ok(inotify) => inotify,
            Err(e) => {
                crate::logging::warn_error(
                    "--watch: no inotify instance (fs.inotify.max_user_instances?): changes are not watched",
                    e.desc(),
                );
                return None;
            }
        };
        let mut watch = Watch {
            inotify,
            dirs: Vec::with_capacity(dirs.len()),
        };
        for dir in dirs {
            let Ok(found) = chase::find(dir) else {
                continue;
            };
            let path = format!("/proc/self/fd/{}", found.as_fd().as_raw_fd());
            // A directory watched twice (named twice, or two ways) gives
            // the same watch.
            match watch.inotify.add_watch(path.as_str(), WATCH) {
                Ok(wd) if !watch.dirs.contains(&wd.as_raw()) => watch.dirs.push(wd.as_raw()),
                _ => {}
            }
        }
        Some(watch)
    }

    /// Takes the events waiting: true when there was one. Any change in a
    /// watched directory counts: envinit's own writes there (a DEST beside
    /// a template or a secret) make one more render, which finds nothing
    /// to change and writes nothing.
    fn changed(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut changed = false;
        // A bounded number of reads: the queue holds at most 16384 events.
        for _ in 0..1024 {
            match nix::unistd::read(self.inotify.as_fd(), &mut buf) {
                Ok(read) if read > 0 => changed = true,
                Err(Errno::EINTR) => continue,
                _ => break,
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::SuperviseSettings;
    use crate::render::PathPair;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    fn tempdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("envinit-reload-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    use crate::lifecycle::{Lifecycle, Processes};

    /// Records the signals sent.
    #[derive(Default)]
    struct Recorder(Vec<i32>);

    /// The one child's lifecycle as a reload's target, as the supervisor
    /// makes it.
    struct Single<'a>(&'a mut Lifecycle, &'a mut Recorder);

    impl ReloadTarget for Single<'_> {
        fn take_reload_request(&mut self) -> bool {
            self.0.take_reload_request()
        }
        fn may_reload(&self) -> bool {
            self.0.may_reload()
        }
        fn after_reload(&mut self, signal: i32, explicit: Option<i32>) {
            self.0.after_reload(signal, explicit, self.1)
        }
    }

    impl Processes for Recorder {
        fn signal_child(&mut self, signal: i32, _: bool) {
            self.0.push(signal);
        }
        fn signal_all(&mut self, signal: i32) {
            self.0.push(-signal);
        }
    }

    /// Kubernetes' volume layout: `..TS/NAME`, `..data -> ..TS`, `NAME ->
    /// ..data/NAME`; `swap` writes a new `..TS` and renames a new `..data`
    /// over the old one, as its atomic writer does.
    fn k8s_volume(dir: &Path, ts: &str, token: &str) {
        let data = dir.join(ts);
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("token"), token).unwrap();
        let tmp = dir.join("..data_tmp");
        symlink(ts, &tmp).unwrap();
        fs::rename(&tmp, dir.join("..data")).unwrap();
        if !dir.join("token").exists() {
            symlink("..data/token", dir.join("token")).unwrap();
        }
    }

    #[test]
    fn watches_see_a_data_swap_and_a_write_and_nothing_else() {
        let dir = tempdir("watch");
        let secrets = dir.join("secrets");
        k8s_volume(&secrets, "..2026_01", "one");
        let quiet = dir.join("quiet");
        fs::create_dir_all(&quiet).unwrap();
        let watch = Watch::new(&[secrets.clone(), quiet.clone(), dir.join("missing")]).unwrap();
        assert_eq!(watch.dirs.len(), 2, "a missing directory is left out");
        assert!(!watch.changed());
        k8s_volume(&secrets, "..2026_02", "two");
        assert!(watch.changed());
        assert!(!watch.changed(), "the events were taken");
        fs::write(quiet.join("x"), "x").unwrap();
        assert!(watch.changed());
        // Named twice (or two ways): one watch.
        let twice = Watch::new(&[quiet.clone(), dir.join("quiet/.")]).unwrap();
        assert_eq!(twice.dirs.len(), 1);
    }

    #[test]
    fn a_reload_writes_what_changed_and_tells_the_app_once() {
        let dir = tempdir("reload");
        let secrets = dir.join("secrets");
        k8s_volume(&secrets, "..2026_01", "one");
        let template = dir.join("app.conf.tmpl");
        fs::write(&template, "token = {{ secrets.token }}\n").unwrap();
        let dest = dir.join("out/app.conf");
        let render = RenderSettings {
            templates: vec![PathPair {
                src: template.clone(),
                dest: dest.clone(),
            }],
            secrets_dir: secrets.clone(),
            ..RenderSettings::default()
        };
        let written = render::write(&render, None).unwrap();
        assert!(written.dirs.contains(&secrets) && written.dirs.contains(&dir));
        let settings = ReloadSettings {
            app_signal: Some(libc::SIGUSR2),
            ..ReloadSettings::default()
        };
        let mut reloader = Reloader::start(Some(&settings), &render, None, written).unwrap();
        assert!(
            !reloader.active(),
            "no watch: a wake-up stays one blocking read"
        );
        let mut lifecycle = Lifecycle::new(&SuperviseSettings::default());
        lifecycle.reload_on(reloader.signal());
        let mut os = Recorder::default();
        let hup =
            |l: &mut Lifecycle, os: &mut Recorder| l.on_signal(libc::SIGHUP, Instant::now(), os);

        // Nothing changed: nothing written, nobody told.
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&dest);
        hup(&mut lifecycle, &mut os);
        reloader.on_ready(&mut Single(&mut lifecycle, &mut os));
        assert!(os.0.is_empty());
        assert_eq!(inode(&dest), before, "an unchanged file is not rewritten");

        // The secret rotated: the file is written, the app told once.
        k8s_volume(&secrets, "..2026_02", "two");
        hup(&mut lifecycle, &mut os);
        reloader.on_ready(&mut Single(&mut lifecycle, &mut os));
        assert_eq!(fs::read_to_string(&dest).unwrap(), "token = two\n");
        assert_eq!(os.0, vec![libc::SIGUSR2]);

        // The secret removed: the reload fails, the file stays, nobody told,
        // and no staged file is left.
        fs::remove_file(secrets.join("token")).unwrap();
        hup(&mut lifecycle, &mut os);
        reloader.on_ready(&mut Single(&mut lifecycle, &mut os));
        assert_eq!(fs::read_to_string(&dest).unwrap(), "token = two\n");
        assert_eq!(os.0, vec![libc::SIGUSR2]);
        let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("app.conf")]);
    }
}
