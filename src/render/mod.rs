//! Rendering: turns the environment into the app's config files before the
//! child starts (templates and ini targets), atomically, reporting every
//! problem at once. (Stub: being written.)

use crate::settings::RenderSettings;

/// Every problem found, one line each (`FILE:LINE:COL: message` for templates).
#[derive(Debug)]
pub struct Failure {
    /// The problems, in the order found.
    pub problems: Vec<String>,
}

/// Renders every template and ini target of `settings`; with `check`, in
/// memory only. On failure nothing is written.
pub fn run(settings: &RenderSettings) -> Result<(), Failure> {
    let _ = settings;
    Ok(())
}
