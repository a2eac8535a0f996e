//! Rendering: turns the environment into the app's config files before the
//! child starts: `--template SRC:DEST` (a file or a directory of templates
//! in envinit's template language, docs/templates.md) and `--ini
//! PREFIX:DEST` (variables as ini lines).
//!
//! # Theory of operation
//!
//! 1. Every template is read, parsed and checked (`template.rs`), then
//!    evaluated into its output in memory (`eval.rs`, which appends text
//!    and values itself); every ini target is built (`ini.rs`). Values come
//!    from one [`Values`]: the environment, the secrets directory, and the
//!    container facts (computed only if a template names `container.*`).
//! 2. Every problem of every file is collected, each on one line: templates'
//!    as `FILE:LINE:COL: message`, others as `PATH: message`. No message
//!    contains a variable's or a secret's value, nor a list of variables.
//! 3. Only when everything rendered, and not with `--check`, the files are
//!    written, atomically and all-or-nothing as far as the filesystem allows
//!    (`files.rs`).
//!
//! envinit renders as root for an app that may own some of the paths
//! involved: templates, secrets, `X_FILE` files and each DEST's directory
//! are resolved by [`crate::appfs::chase`], and a path the app's user could
//! have redirected (a symlink or a directory of another owner inside the
//! user's) is one more problem of step 2, found before anything is
//! written.
//!
//! [`write()`] is what `main` calls (phase 4, and `--check`); [`run`] is the
//! same without its log lines; [`run_with`] is the same over given values
//! (tests, benchmarks); [`render_template`] renders one template's text.

mod ast;
mod case;
mod case_tables;
mod diff;
mod eval;
mod files;
mod formatters;
mod ini;
mod template;
mod values;

use std::path::{Path, PathBuf};

use crate::exit::{self, Failure};
use crate::options::{Given, parse_bool, split_pair};

pub use diff::MAX_EDITS;
pub use eval::{MAX_OUTPUT, MAX_STEPS};
pub use files::{MAX_DIR_DEPTH, MAX_FILES, MAX_TEMPLATE};
pub use template::{MAX_DEPTH, MAX_TAGS};
pub use values::{MAX_FILES_TOTAL, MAX_VALUE, Values};

/// Config files rendered at start: the config options (docs/options.md,
/// "Config rendering"; the language is docs/templates.md).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSettings {
    /// `--template SRC:DEST` pairs; SRC may be a directory.
    pub templates: Vec<PathPair>,
    /// `--ini PREFIX:DEST` targets.
    pub ini: Vec<IniTarget>,
    /// Render in memory and report, write nothing, run nothing.
    pub check: bool,
    /// With `check`: print a unified diff of what would change.
    pub diff: bool,
    /// Where `{{ secrets.NAME }}` reads from.
    pub secrets_dir: PathBuf,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            templates: Vec::new(),
            ini: Vec::new(),
            check: false,
            diff: false,
            secrets_dir: PathBuf::from("/run/secrets"),
        }
    }
}

impl RenderSettings {
    /// True when there is nothing to render (the common fast path).
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.ini.is_empty()
    }

    /// `--template`, `--ini`, `--secrets-dir`, `--check`, `--diff` (which
    /// implies `--check`).
    pub fn from_options(given: &mut Given) -> Result<RenderSettings, Failure> {
        let mut render = RenderSettings::default();
        if given.is_empty() {
            return Ok(render);
        }
        if let Some(r) = given.take("template") {
            render.templates = r.parse_each(|v| {
                let (src, dest) = split_pair(v, "SRC:DEST")?;
                Ok(PathPair {
                    src: src.into(),
                    dest: dest.into(),
                })
            })?;
        }
        if let Some(r) = given.take("ini") {
            render.ini = r.parse_each(|v| {
                let (prefix, dest) = split_pair(v, "PREFIX:DEST")?;
                Ok(IniTarget {
                    prefix: prefix.to_string(),
                    dest: dest.into(),
                })
            })?;
        }
        if let Some(r) = given.take("secrets-dir") {
            if let Some(dir) = r.last() {
                render.secrets_dir = dir.into();
            }
        }
        if let Some(r) = given.take("check") {
            render.check = r.parse_last(parse_bool)?.unwrap_or(false);
        }
        if let Some(r) = given.take("diff") {
            render.diff = r.parse_last(parse_bool)?.unwrap_or(false);
            render.check |= render.diff;
        }
        Ok(render)
    }
}

/// A template source and where its output goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPair {
    /// The template file or directory.
    pub src: PathBuf,
    /// The rendered file or directory.
    pub dest: PathBuf,
}

/// `--ini PREFIX:DEST`: variables named `PREFIX...` become lines of DEST.
#[derive(Debug, Clone, PartialEq)]
pub struct IniTarget {
    /// The variable-name prefix, kept as written (case-sensitive).
    pub prefix: String,
    /// The ini file to write.
    pub dest: PathBuf,
}

/// The most problems reported for one template; the rest are counted.
pub const MAX_PROBLEMS_PER_FILE: usize = 100;

/// The most bytes all rendered files of one run may total (64 MiB).
pub const MAX_TOTAL_OUTPUT: usize = 64 << 20;

/// What a successful run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files rendered (templates and ini targets).
    pub rendered: usize,
    /// Files written: `rendered`, or 0 with `--check`.
    pub written: usize,
}

/// The permission bits a file keeps when its output includes a value read
/// from a secret (`secrets.X` or an `X_FILE`): none for "other", no write
/// for the group; stricter template modes stay as they are.
pub const SECRET_MODE_MASK: u32 = 0o750;

/// Phase 4: renders every file and writes them, all or nothing, owned by
/// `owner` (the `--user`'s uid and gid) when given; with `--check`, renders
/// in memory only. Returns how many files rendered and what was read; on
/// failure, every problem (`FILE:LINE:COL: ...`), exit 78, and nothing was
/// written.
pub fn write(settings: &RenderSettings, owner: Option<(u32, u32)>) -> Result<Written, Failure> {
    if settings.is_empty() {
        return Ok(Written::default());
    }
    match step(settings, owner, Step::Write) {
        Ok(written) => {
            tracing::debug!(files = written.files, "config rendered");
            Ok(written)
        }
        Err(failure) => {
            let mut problems = failure.problems;
            let count = problems.len();
            problems.push(format!(
                "nothing was written and nothing started ({count} problem{})",
                if count == 1 { "" } else { "s" }
            ));
            Err(Failure::all(exit::CONFIG, problems))
        }
    }
}

/// A reload: renders every file again from the current inputs, exactly as
/// at start, then writes, all or nothing, those whose content differs from
/// what their DEST holds now (read through [`crate::appfs::chase`]); the
/// others are left untouched, mode and owner included. On failure, every
/// problem and nothing written.
pub fn reload(settings: &RenderSettings, owner: Option<(u32, u32)>) -> Result<Written, Failure> {
    step(settings, owner, Step::Reload)
}

/// `--check --diff`: renders every file, then appends to `out` a unified
/// diff of each DEST as it is now against what a start or a reload would
/// write, secret values masked (see `diff.rs`). `Ok(true)` when something
/// would change.
pub fn diff(settings: &RenderSettings, out: &mut Vec<u8>) -> Result<bool, Failure> {
    let values = Values::from_process(settings.secrets_dir.clone());
    let rendered = render_all(settings, &values, None, true)
        .map_err(|problems| Failure::all(exit::CONFIG, problems))?;
    let mut changed = false;
    for (output, masks) in rendered.outputs.iter().zip(&rendered.masks) {
        changed |= files::diff_one(out, output, masks);
    }
    Ok(changed)
}

/// What a render read and wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Files rendered.
    pub files: usize,
    /// Files written: every one at start; at a reload, those whose DEST
    /// held another content (or was no regular file).
    pub written: usize,
    /// The directories the inputs were read from: each template file's,
    /// every template directory and those under it, each secret's and
    /// `X_FILE`'s (as named, not resolved; some may repeat), for
    /// `--watch`.
    pub dirs: Vec<PathBuf>,
    /// The container facts the templates read, if they named any.
    pub facts: Option<crate::container::Facts>,
}

/// The second step after rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Write every file (`--check`: none).
    Write,
    /// Write the files that differ from their DEST.
    Reload,
}

fn step(
    settings: &RenderSettings,
    owner: Option<(u32, u32)>,
    step: Step,
) -> Result<Written, Failure> {
    let values = Values::from_process(settings.secrets_dir.clone());
    // The owner of the directories a write creates for a DEST, checked with
    // the rest of the path; --check does not resolve --user, so there only
    // the directories that exist are checked.
    let creator = (!settings.check).then(|| owner.map_or_else(crate::appfs::chase::euid, |o| o.0));
    let rendered = render_all(settings, &values, creator, false)
        .map_err(|problems| Failure::all(exit::CONFIG, problems))?;
    let mut written = Written {
        files: rendered.outputs.len(),
        dirs: rendered.dirs,
        facts: values.facts(),
        written: 0,
    };
    if !settings.check {
        written.written = files::write_all(&rendered.outputs, owner, step == Step::Reload)
            .map_err(|problems| Failure::all(exit::CONFIG, problems))?;
    }
    Ok(written)
}

/// Renders everything `settings` asks for from this process's environment
/// and writes it (unless `settings.check`), the files and the directories
/// created for them owned by `owner` (uid, gid; `--user`) when given. Does
/// nothing, quickly, when there is nothing to render.
pub fn run(settings: &RenderSettings, owner: Option<(u32, u32)>) -> Result<Summary, Failure> {
    if settings.is_empty() {
        return Ok(Summary::default());
    }
    step(settings, owner, Step::Write).map(|w| Summary {
        rendered: w.files,
        written: w.written,
    })
}

/// [`run`] over the given values (its secrets directory is the one used;
/// `settings.secrets_dir` is only read by [`run`]), files owned by envinit.
pub fn run_with(settings: &RenderSettings, values: &Values) -> Result<Summary, Failure> {
    let creator = (!settings.check).then(crate::appfs::chase::euid);
    let rendered = render_all(settings, values, creator, false)
        .map_err(|problems| Failure::all(exit::CONFIG, problems))?;
    let rendered_files = rendered.outputs.len();
    if settings.check {
        return Ok(Summary {
            rendered: rendered_files,
            written: 0,
        });
    }
    files::write_all(&rendered.outputs, None, false)
        .map_err(|problems| Failure::all(exit::CONFIG, problems))?;
    Ok(Summary {
        rendered: rendered_files,
        written: rendered_files,
    })
}

/// Step 1 of every run: the files rendered in memory.
struct Rendered {
    outputs: Vec<files::Output>,
    /// With `--diff`, how to mask each output (else empty).
    masks: Vec<diff::Masks>,
    /// The directories the templates and value files were read from.
    dirs: Vec<PathBuf>,
}

/// Renders every template and ini target from `values`, in memory: the
/// outputs, or every problem. `creator`: see [`check_dests`]; `masks`:
/// record what `--diff` needs to mask secrets.
fn render_all(
    settings: &RenderSettings,
    values: &Values,
    creator: Option<u32>,
    masks: bool,
) -> Result<Rendered, Vec<String>> {
    let mut problems = Vec::new();
    let mut rendered = Rendered {
        outputs: Vec::new(),
        masks: Vec::new(),
        dirs: Vec::new(),
    };
    let mut count = 0;
    let mut total = 0usize;
    for pair in &settings.templates {
        let jobs = match files::expand(&pair.src, &pair.dest, &mut count, &mut rendered.dirs) {
            Ok(jobs) => jobs,
            Err(found) => {
                problems.extend(found);
                continue;
            }
        };
        for job in jobs {
            match render_job(job, values, masks) {
                Ok((output, mask)) => {
                    total = total.saturating_add(output.bytes.len());
                    rendered.outputs.push(output);
                    if masks {
                        rendered.masks.push(mask);
                    }
                }
                Err(lines) => problems.extend(lines),
            }
        }
    }
    for target in &settings.ini {
        match ini::render(target, values) {
            Ok(bytes) => {
                total = total.saturating_add(bytes.len());
                rendered.outputs.push(files::Output {
                    dest: target.dest.clone(),
                    bytes,
                    mode: 0o644,
                });
                if masks {
                    rendered.masks.push(diff::Masks::default());
                }
            }
            Err(found) => problems.extend(found),
        }
    }
    if total > MAX_TOTAL_OUTPUT {
        problems.push(format!(
            "the rendered files total more than {} MiB: render fewer or smaller files",
            MAX_TOTAL_OUTPUT >> 20
        ));
    }
    check_dests(&rendered.outputs, creator, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    for file in values.files_read() {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        rendered
            .dirs
            .push(dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    }
    Ok(rendered)
}

/// Reads and renders one template file into its output (and, with
/// `masks`, what `--diff` needs to mask it). A file holding a secret is not
/// for "other" (nor for the group to write): 0644 becomes 0640.
fn render_job(
    job: files::Job,
    values: &Values,
    masks: bool,
) -> Result<(files::Output, diff::Masks), Vec<String>> {
    let reads = values.secret_reads();
    let bytes = files::read_template(&job.src).map_err(|problem| vec![problem])?;
    let (text, mask) = render_source(&job.src.display().to_string(), &bytes, values, masks)?;
    let mode = if values.secret_reads() != reads {
        job.mode & SECRET_MODE_MASK
    } else {
        job.mode
    };
    Ok((
        files::Output {
            dest: job.dest,
            bytes: text.into_bytes(),
            mode,
        },
        mask,
    ))
}

/// Every DEST once, none a directory, each reached safely (see `files.rs`).
fn check_dests(outputs: &[files::Output], creator: Option<u32>, problems: &mut Vec<String>) {
    let mut seen: Vec<&Path> = Vec::with_capacity(outputs.len());
    let mut sorted: Vec<&PathBuf> = outputs.iter().map(|o| &o.dest).collect();
    sorted.sort();
    for dest in sorted {
        if seen.last() == Some(&dest.as_path()) {
            problems.push(format!(
                "{}: written by two templates or ini targets: give each its own DEST",
                dest.display()
            ));
        }
        seen.push(dest);
    }
    for output in outputs {
        if let Err(message) = files::check_dest(&output.dest, creator) {
            problems.push(message);
        }
    }
}

/// Renders one template's bytes; `name` prefixes the problems
/// (`name:LINE:COL: message`). At most [`MAX_PROBLEMS_PER_FILE`] problems
/// are listed, then a line counting the rest.
pub fn render_template(name: &str, source: &[u8], values: &Values) -> Result<String, Vec<String>> {
    render_source(name, source, values, false).map(|(text, _)| text)
}

/// [`render_template`], and with `masks` what `--diff` needs to mask the
/// output.
fn render_source(
    name: &str,
    source: &[u8],
    values: &Values,
    masks: bool,
) -> Result<(String, diff::Masks), Vec<String>> {
    let src = match std::str::from_utf8(source) {
        Ok(src) => src,
        Err(e) => {
            let valid = &source[..e.valid_up_to()];
            // The valid prefix is UTF-8 by definition.
            let prefix = std::str::from_utf8(valid).unwrap_or("");
            let (line, col) = template::LineIndex::new(prefix).position(prefix, prefix.len());
            return Err(vec![format!(
                "{name}:{line}:{col}: the template is not valid UTF-8 here: templates must be UTF-8 text"
            )]);
        }
    };
    let (parsed, mut problems) = template::parse(src);
    if let Some(parsed) = &parsed {
        match eval::render(src, parsed, values) {
            Ok((text, secret)) if problems.is_empty() => {
                let mut mask = diff::Masks::default();
                if masks {
                    mask.secret = secret;
                    mask.shapes =
                        diff::names_secret(&parsed.nodes, values).then(|| diff::shapes(src));
                }
                return Ok((text, mask));
            }
            Ok(_) => {}
            Err(found) => problems.extend(found),
        }
    }
    problems.sort_by_key(|p| p.offset);
    let index = template::LineIndex::new(src);
    let mut lines: Vec<String> = problems
        .iter()
        .take(MAX_PROBLEMS_PER_FILE)
        .map(|p| {
            let (line, col) = index.position(src, p.offset);
            format!("{name}:{line}:{col}: {}", p.message)
        })
        .collect();
    if problems.len() > MAX_PROBLEMS_PER_FILE {
        lines.push(format!(
            "{name}: {} more problems not shown",
            problems.len() - MAX_PROBLEMS_PER_FILE
        ));
    }
    Err(lines)
}

#[cfg(test)]
mod tests;
