//! envinit's entry point: the story of a container start, one call per
//! phase. Read the modules named here for each phase's rules.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use envinit::follow::Followers;
use envinit::settings::{self, Request};
use envinit::{arena, exit, launch, logging, render, supervisor, wait};

/// Start-up allocations come from a small static arena (see `arena`).
#[global_allocator]
static ALLOCATOR: arena::StartupArena = arena::StartupArena;

fn main() -> ExitCode {
    // 1. Settings: command line over ENVINIT_* variables.
    let settings = match settings::from_process() {
        Ok(Request::Run(settings)) => settings,
        Ok(Request::Help) => {
            print!("{}", settings::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Request::Version) => {
            println!("envinit {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            logging::early_error(&e.message);
            if e.code == exit::USAGE {
                logging::early_line(settings::USAGE_LINE);
            }
            return ExitCode::from(e.code);
        }
    };
    logging::init(settings.log);
    for name in &settings.unknown_variables {
        tracing::warn!(
            variable = name.as_str(),
            "unknown ENVINIT_ variable ignored: check its spelling (docs/options.md)"
        );
    }

    // --user, --export-file-vars, --wait, --probe: None when none is given.
    let start_up = settings.start_up.as_deref();

    // --probe: check each URL once, report, and stop there (HEALTHCHECK).
    if let Some(probe) = start_up.and_then(|s| s.probe.as_ref()) {
        return ExitCode::from(wait::probe(probe));
    }

    // --check: render in memory, report, and stop there.
    if settings.render.check {
        return match render_config(&settings.render, None) {
            Ok(files) => {
                tracing::info!(files, "check passed: every file renders");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }

    // 2. Signals: blocked from here on and held for the child, so a stop
    //    that arrives while config is rendered is not lost.
    let signals = match supervisor::take_signals() {
        Ok(signals) => signals,
        Err(e) => return fail(&e.message, e.code),
    };

    // 3. Launch: the app's user and environment (--user, --export-file-vars),
    //    resolved before anything is written or started.
    let launch = match start_up.map(|s| launch::prepare(&s.launch)) {
        None => launch::Launch::default(),
        Some(Ok(launch)) => launch,
        Some(Err(problems)) => return fail_all(&problems, exit::CONFIG),
    };

    // 4. Render: config files from the environment, all or nothing, owned
    //    by the --user.
    if !settings.render.is_empty() {
        if let Err(code) = render_config(&settings.render, launch.owner()) {
            return code;
        }
    }

    // 5. Wait for dependencies (--wait); a stop signal ends the start here.
    if let Some(wait) = start_up.map(|s| &s.wait).filter(|w| !w.targets.is_empty()) {
        if let Err(code) = wait::wait_for(wait, &signals) {
            return ExitCode::from(settings.final_code(code));
        }
    }

    // 6. Follow log files (--stdout, --stderr): watched before the app
    //    starts, so none of its lines is missed. Nothing to do without them.
    let mut followers = Followers::start(&settings.follow);

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
    match ended {
        Ok(status) => ExitCode::from(settings.final_code(status.code())),
        Err(e) => fail(&e.message, e.code),
    }
}

/// Renders (or with `--check` only evaluates) every file; on failure prints
/// every problem and returns exit code 78.
fn render_config(
    render: &settings::RenderSettings,
    owner: Option<(u32, u32)>,
) -> Result<usize, ExitCode> {
    match render::run(render, owner) {
        Ok(summary) => {
            tracing::debug!(files = summary.written, "config rendered");
            Ok(summary.rendered)
        }
        Err(failure) => {
            fail_all(&failure.problems, exit::CONFIG);
            let problems = failure.problems.len();
            tracing::error!(problems, "nothing was written and nothing started");
            Err(ExitCode::from(exit::CONFIG))
        }
    }
}

/// One error line, then the exit code.
fn fail(message: &str, code: u8) -> ExitCode {
    fail_all(&[message.to_string()], code)
}

/// One error line per problem, then the exit code.
fn fail_all(problems: &[String], code: u8) -> ExitCode {
    for problem in problems {
        tracing::error!("{problem}");
    }
    ExitCode::from(code)
}
