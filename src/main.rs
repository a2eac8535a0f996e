//! envinit's entry point: the story of a container start, one call per
//! phase. Read the modules named here for each phase's rules.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::process::ExitCode;

use envinit::follow::Followers;
use envinit::settings::{self, Request};
use envinit::{arena, exit, launch, logging, render, supervisor, vm, wait};

/// Start-up allocations come from a small static arena (see `arena`).
#[global_allocator]
static ALLOCATOR: arena::StartupArena = arena::StartupArena;

fn main() -> ExitCode {
    let mut args = settings::process_args();
    let mut variables = settings::process_variables();

    // 0. VM mode (docs/vm.md): the kernel started envinit as a machine's
    //    init (PID 1, /proc not mounted, or --vm on). Mount what a container
    //    runtime would have; the image config gives command and environment.
    //    From here on envinit never returns: the machine powers off.
    let vm = vm::detect(&args, &variables);
    let mut booted = None;
    if vm {
        match vm::boot().and_then(|()| vm::apply_image_config(args)) {
            Ok(mut b) => {
                args = std::mem::take(&mut b.args);
                // The image's Env may hold ENVINIT_* options.
                variables = settings::process_variables();
                booted = Some(b);
            }
            Err(message) => {
                logging::early_error(&message);
                vm::end(exit::OS_ERROR, vm::Exit::default(), false);
            }
        }
    }

    // 1-9. The container's start, from the settings to the child's end.
    let end = start(args, variables, booted.as_ref());

    // 10. In VM mode: the exit code on the console, then power off (or
    //     reboot). Never returns.
    if vm {
        vm::end(end.code, end.vm_exit, end.quiet);
    }
    ExitCode::from(end.code)
}

/// How a start ended: the exit code, and what VM mode needs to end.
struct End {
    code: u8,
    vm_exit: vm::Exit,
    quiet: bool,
}

impl End {
    fn code(code: u8) -> End {
        End {
            code,
            vm_exit: vm::Exit::default(),
            quiet: false,
        }
    }
}

/// Phases 1-9: from the settings to the child's end. `vm` is what VM mode's
/// boot found (the image config), `None` in containers.
fn start(
    args: Vec<OsString>,
    variables: Vec<(OsString, OsString)>,
    vm: Option<&vm::Booted>,
) -> End {
    // 1. Settings: command line over ENVINIT_* variables.
    let mut settings = match settings::from_process(args, variables) {
        Ok(Request::Run(settings)) => settings,
        Ok(Request::Help) => {
            print!("{}", settings::HELP);
            return End::code(0);
        }
        Ok(Request::Version) => {
            println!("envinit {}", env!("CARGO_PKG_VERSION"));
            return End::code(0);
        }
        Err(e) => {
            logging::early_error(&e.message);
            if e.code == exit::USAGE {
                logging::early_line(settings::USAGE_LINE);
            }
            return End::code(e.code);
        }
    };
    logging::init(settings.log);
    let mut end = End {
        code: 0,
        vm_exit: settings.vm.exit,
        quiet: settings.log.level.is_none(),
    };
    for name in &settings.unknown_variables {
        tracing::warn!(
            variable = name.as_str(),
            "unknown ENVINIT_ variable ignored: check its spelling (docs/options.md)"
        );
    }
    if let Some(booted) = vm {
        for warning in &booted.warnings {
            tracing::warn!("{warning}");
        }
        vm::adjust(&mut settings, booted.stop_signal);
    } else if settings.vm.mode == vm::Mode::On {
        end.code = fail(
            "--vm on: envinit is not PID 1 here, so it is not a machine's init",
            exit::USAGE,
        );
        return end;
    }

    // --user, --export-file-var, --wait, --probe: None when none is given.
    let start_up = settings.start_up.as_deref();

    // --probe: check each URL once, report, and stop there (HEALTHCHECK).
    if let Some(probe) = start_up.and_then(|s| s.probe.as_ref()) {
        end.code = wait::probe(probe);
        return end;
    }

    // --check: render in memory, report, and stop there.
    if settings.render.check {
        end.code = match render_config(&settings.render, None) {
            Ok(files) => {
                tracing::info!(files, "check passed: every file renders");
                0
            }
            Err(code) => code,
        };
        return end;
    }

    // 2. Signals: blocked from here on and held for the child, so a stop
    //    that arrives while config is rendered is not lost.
    let signals = match supervisor::take_signals() {
        Ok(signals) => signals,
        Err(e) => {
            end.code = fail(&e.message, e.code);
            return end;
        }
    };

    // 3. Launch: the app's user and environment (--user, --export-file-var),
    //    resolved before anything is written or started.
    let launch = match start_up.map(|s| launch::prepare(&s.launch)) {
        None => launch::Launch::default(),
        Some(Ok(launch)) => launch,
        Some(Err(problems)) => {
            end.code = fail_all(&problems, exit::CONFIG);
            return end;
        }
    };

    // 4. Render: config files from the environment, all or nothing, owned
    //    by the --user.
    if !settings.render.is_empty() {
        if let Err(code) = render_config(&settings.render, launch.owner()) {
            end.code = code;
            return end;
        }
    }

    // 5. Wait for dependencies (--wait); a stop signal ends the start here.
    if let Some(wait) = start_up.map(|s| &s.wait).filter(|w| !w.targets.is_empty()) {
        if let Err(code) = wait::wait_for(wait, &signals) {
            end.code = settings.final_code(code);
            return end;
        }
    }

    // 6. Follow log files (--stdout, --stderr): watched before the app
    //    starts, so none of its lines is missed, and read with the app's
    //    rights (the --user's, when envinit switches to it). Nothing to do
    //    without them.
    let app = launch.identity.as_ref().filter(|_| launch.switch);
    let mut followers = Followers::start(&settings.follow, app);

    // 7. Spawn (as the --user) and supervise until the child and everything
    //    it left are gone.
    let ended = supervisor::run(
        &settings.supervise,
        &settings.command,
        &launch,
        signals,
        &mut followers,
    );

    // 8. Drain: the last lines the app wrote to its log files.
    followers.drain();

    // 9. Exit with the child's code (128+N if killed), after --remap-exit.
    end.code = match ended {
        Ok(status) => settings.final_code(status.code()),
        Err(e) => fail(&e.message, e.code),
    };
    end
}

/// Renders (or with `--check` only evaluates) every file; on failure prints
/// every problem and returns exit code 78.
fn render_config(
    render: &settings::RenderSettings,
    owner: Option<(u32, u32)>,
) -> Result<usize, u8> {
    match render::run(render, owner) {
        Ok(summary) => {
            tracing::debug!(files = summary.written, "config rendered");
            Ok(summary.rendered)
        }
        Err(failure) => {
            fail_all(&failure.problems, exit::CONFIG);
            let problems = failure.problems.len();
            tracing::error!(problems, "nothing was written and nothing started");
            Err(exit::CONFIG)
        }
    }
}

/// One error line, then the exit code.
fn fail(message: &str, code: u8) -> u8 {
    fail_all(&[message.to_string()], code)
}

/// One error line per problem, then the exit code.
fn fail_all(problems: &[String], code: u8) -> u8 {
    for problem in problems {
        tracing::error!("{problem}");
    }
    code
}
