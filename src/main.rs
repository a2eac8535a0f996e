//! envinit's entry point: the story of a container start, one call per
//! phase. Read the modules named here for each phase's rules.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use envinit::settings::{self, Request};
use envinit::{arena, exit, logging, render, supervisor};

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
            return ExitCode::from(e.code);
        }
    };
    logging::init(settings.log);

    // 2. Render: config files from the environment, all or nothing.
    if !settings.render.is_empty() || settings.render.check {
        match render::run(&settings.render) {
            Ok(summary) if settings.render.check => {
                tracing::info!(files = summary.rendered, "check passed: every file renders");
                return ExitCode::SUCCESS;
            }
            Ok(summary) => tracing::debug!(files = summary.written, "config rendered"),
            Err(failure) => {
                for problem in &failure.problems {
                    tracing::error!("{problem}");
                }
                tracing::error!(
                    problems = failure.problems.len(),
                    "nothing was written and nothing started"
                );
                return ExitCode::from(exit::CONFIG);
            }
        }
    }

    // 3. Spawn and supervise until the child and everything it left are gone.
    match supervisor::run(&settings.supervise, &settings.command) {
        // 4. Exit with the child's code (128+N if killed), after --remap-exit.
        Ok(status) => ExitCode::from(settings.final_code(status.code())),
        Err(e) => {
            tracing::error!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}
