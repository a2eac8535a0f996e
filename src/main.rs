//! envinit's entry point: the story of a container start, one call per
//! phase. Read the modules named here for each phase's rules, and
//! ARCHITECTURE.md for how they fit together.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use envinit::exit::{self, Failure};
use envinit::follow::Followers;
use envinit::lifecycle::ChildStatus;
use envinit::reload;
use envinit::settings::{self, Request, Settings};
use envinit::supervisor::Extras;
use envinit::{arena, launch, logging, options, procs, render, signals, supervisor, vm, wait};

/// Start-up allocations come from a small static arena (see `arena`).
#[global_allocator]
static ALLOCATOR: arena::StartupArena = arena::StartupArena;

fn main() -> ExitCode {
    let args = options::process_args();
    let variables = options::process_variables();

    // 0. VM mode (docs/vm.md): the kernel started envinit as a machine's
    //    init. Mount what a container runtime would have; the image config
    //    gives command and environment (so the variables are read again).
    //    From here on envinit never returns: the machine powers off at the
    //    end.
    let machine = vm::detect(&args, &variables);
    let (args, variables, booted) = match machine {
        false => (args, variables, None),
        true => match vm::boot(args) {
            Ok(mut booted) => (
                std::mem::take(&mut booted.args),
                options::process_variables(),
                Some(booted),
            ),
            Err(failure) => vm::end(report_early(&failure), vm::Exit::default(), false),
        },
    };

    // 1. Configure: the settings, logging, the VM adjustments; --help,
    //    --version, --probe and --check end here.
    let ended = match configure(args, variables, booted.as_ref()) {
        // 2-9. The container's start, from the signals to the child's end.
        Configured::Run(settings) => Ended::of(&settings, start(&settings)),
        Configured::Done(ended) => ended,
    };

    // 10. In VM mode: the exit code on the console, then power off (or
    //     reboot). Never returns.
    if machine {
        vm::end(ended.code, ended.vm_exit, ended.quiet);
    }
    ExitCode::from(ended.code)
}

/// How a start ended: the exit code, and how VM mode ends the machine.
struct Ended {
    code: u8,
    vm_exit: vm::Exit,
    quiet: bool,
}

impl Ended {
    /// The end of a start whose settings were read: `--remap-exit` applies
    /// to whatever code ended it.
    fn of(settings: &Settings, code: u8) -> Ended {
        Ended {
            code: settings.remap_exit.apply(code),
            vm_exit: settings.vm.exit,
            quiet: settings.log.is_off(),
        }
    }

    /// The end of a start whose settings could not be read.
    fn early(code: u8) -> Ended {
        Ended {
            code,
            vm_exit: vm::Exit::default(),
            quiet: false,
        }
    }
}

/// What phase 1 decided.
enum Configured {
    /// Run the start with these settings.
    Run(Box<Settings>),
    /// Nothing to run: help, version, a probe, a check, or a bad setting.
    Done(Ended),
}

/// Phase 1: settings (command line over `ENVINIT_*` variables), logging,
/// warnings, VM mode's adjustments, and the runs that end here.
fn configure(
    args: Vec<OsString>,
    variables: Vec<(OsString, OsString)>,
    booted: Option<&vm::Booted>,
) -> Configured {
    let mut settings = match settings::read(args, variables) {
        Ok(Request::Run(settings)) => settings,
        Ok(Request::Help) => {
            print!("{}", options::help());
            return Configured::Done(Ended::early(0));
        }
        Ok(Request::Version) => {
            println!("envinit {}", env!("CARGO_PKG_VERSION"));
            return Configured::Done(Ended::early(0));
        }
        Err(failure) => {
            let code = report_early(&failure);
            if code == exit::USAGE {
                logging::early_line(options::USAGE_LINE);
            }
            return Configured::Done(Ended::early(code));
        }
    };
    logging::init(settings.log);
    for name in &settings.unknown_variables {
        tracing::warn!(
            variable = name.as_str(),
            "unknown ENVINIT_ variable ignored: check its spelling (docs/options.md)"
        );
    }
    let done = |settings: &Settings, result: Result<u8, Failure>| {
        let code = result.unwrap_or_else(|failure| report(&failure));
        Configured::Done(Ended::of(settings, code))
    };
    match booted {
        Some(booted) => {
            // A network, volume or secrets disk that cannot be set up is
            // a broken configuration: power off, even with --vm-exit reboot.
            if let Err(failure) = vm::settle(booted, &settings.vm) {
                return Configured::Done(Ended::early(report(&failure)));
            }
            settings.supervise.for_vm(booted.stop_signal);
        }
        None if settings.vm.mode == vm::Mode::On => {
            let failure = Failure::new(
                exit::USAGE,
                "--vm on: envinit is not PID 1 here, so it is not a machine's init",
            );
            return done(&settings, Err(failure));
        }
        None => {}
    }
    // --probe: check each URL once, report, and stop there (HEALTHCHECK).
    if let Some(probe) = settings.probe() {
        return done(&settings, Ok(wait::probe(probe)));
    }
    // --check: render in memory, report (--diff: what would change), and
    // stop there.
    if settings.render.check {
        // With --procfile, the Procfile too (its lines, the processes the
        // --proc-* options name, their users); every problem of both.
        let procfile = match settings.procs() {
            Some(procs) => procs::check(procs, &settings.command, settings.export_file_vars()),
            None => Ok(()),
        };
        let checked = match settings.render.diff {
            true => diff(&settings.render),
            false => render::write(&settings.render, None).map(|written| {
                tracing::info!(files = written.files, "check passed: every file renders");
                0
            }),
        };
        let checked = match (procfile, checked) {
            (Ok(()), checked) => checked,
            (Err(failure), Ok(_)) => Err(failure),
            (Err(mut failure), Err(render)) => {
                failure.problems.extend(render.problems);
                Err(failure)
            }
        };
        return done(&settings, checked);
    }
    Configured::Run(settings)
}

/// Phases 2-9, from taking the signals to the child's end: the child's
/// code (128+N if a signal killed it), or envinit's own when a phase
/// failed (reported here, one line per problem).
fn start(settings: &Settings) -> u8 {
    run(settings).unwrap_or_else(|failure| report(&failure))
}

fn run(settings: &Settings) -> Result<u8, Failure> {
    // 2. Signals: blocked from here on and held for the child, so a stop
    //    that arrives while config is rendered is not lost.
    let signals = signals::intake::take()?;

    // 3. Launch: the app's user and environment (--user,
    //    --export-file-var), resolved before anything is written or
    //    started.
    let launch = launch::prepare(settings.launch())?;
    //    With several processes (--procfile): each one's command, user and
    //    environment, from the Procfile and the --proc-* options.
    let plan = match settings.procs() {
        Some(procs) => Some(Box::new(procs::prepare(
            procs,
            &settings.command,
            &launch,
            settings.export_file_vars(),
            settings.wait_timeout(),
        )?)),
        None => None,
    };

    // 4. Render: config files from the environment, all or nothing, owned
    //    by the --user; and what renders them again while the app runs (the
    //    reload signal, --watch).
    let reloader = match settings.render.is_empty() {
        true => None,
        false => {
            let written = render::write(&settings.render, launch.owner())?;
            reload::Reloader::start(
                settings.reload.as_deref(),
                &settings.render,
                launch.owner(),
                written,
            )
        }
    };

    // 5. Wait for dependencies (--wait); a stop signal ends the start here.
    if let Some(checks) = settings.wait() {
        wait::wait_for(checks, &signals)?;
    }

    // 6. Follow log files (--stdout, --stderr): watched before the app
    //    starts, so none of its lines is missed, and read with the app's
    //    rights (the --user's, when envinit switches to it). Nothing to do
    //    without them.
    let app = launch.identity.as_ref().filter(|_| launch.switch);
    let followers = Followers::start(&settings.follow, app);

    // 7. Spawn (as the --user) and supervise until the child and everything
    //    it left are gone, the log files copied and the reloads done; with
    //    several processes, start them in order and supervise them all
    //    (docs/supervision.md).
    let mut extras = Extras::new(followers, reloader);
    let ended = match &plan {
        None => supervisor::run(
            &settings.supervise,
            &settings.command,
            &launch,
            signals,
            &mut extras,
        )
        .map(ChildStatus::code),
        Some(plan) => supervisor::run_team(&settings.supervise, plan, signals, &mut extras),
    };

    // 8. Drain: the last lines the app wrote to its log files.
    extras.drain();

    // 9. The child's code (128+N if killed); with several processes, the
    //    code of the one that ended first (0 after a clean stop).
    ended
}

/// `--check --diff`: the diff on stdout; 0 when nothing would change, 1
/// when something would.
fn diff(render: &render::RenderSettings) -> Result<u8, Failure> {
    let mut out = Vec::new();
    let changed = render::diff(render, &mut out)?;
    if let Err(e) = std::io::stdout().write_all(&out) {
        return Err(Failure::new(
            exit::OS_ERROR,
            format!("cannot print the diff: {}", exit::reason(&e)),
        ));
    }
    Ok(u8::from(changed))
}

/// One error line per problem; returns the failure's exit code.
fn report(failure: &Failure) -> u8 {
    for problem in &failure.problems {
        logging::error(problem);
    }
    failure.code
}

/// The same before logging is set up (the settings are not read yet).
fn report_early(failure: &Failure) -> u8 {
    for problem in &failure.problems {
        logging::early_error(problem);
    }
    failure.code
}
