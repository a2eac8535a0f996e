//! Logging: envinit's own messages, as `tracing` events, written to stderr
//! only (stdout belongs to the app), one line per event, as text or JSON.
//!
//! A small hand-written subscriber instead of `tracing-subscriber`: envinit
//! needs no spans, filters or timestamps (the engine timestamps every line),
//! and every byte and instruction at start-up counts. Each line goes out in
//! one `write` so it never interleaves with the app's output mid-line.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::exit::Failure;
use crate::json::push_json_string;
use crate::options::Given;

/// envinit's own logging: `ENVINIT_LOG` and `ENVINIT_LOG_FORMAT`
/// (docs/options.md, "Logging").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// The most verbose level printed; `None` prints nothing.
    pub level: Option<tracing::Level>,
    /// One line of text or one JSON object per event.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: Some(tracing::Level::WARN),
            json: false,
        }
    }
}

impl LogSettings {
    /// `ENVINIT_LOG`, `ENVINIT_LOG_FORMAT`.
    pub fn from_options(given: &mut Given) -> Result<LogSettings, Failure> {
        let mut log = LogSettings::default();
        if let Some(r) = given.take("log") {
            log.level = r.parse_last(parse_level)?.unwrap_or(log.level);
        }
        if let Some(r) = given.take("log-format") {
            let json = r.parse_last(|format| match format.to_ascii_lowercase().as_str() {
                "text" => Ok(false),
                "json" => Ok(true),
                _ => Err(format!("{format:?} is not text or json")),
            })?;
            log.json = json.unwrap_or(false);
        }
        Ok(log)
    }

    /// True with `ENVINIT_LOG=off`: not even VM mode's exit line.
    pub fn is_off(&self) -> bool {
        self.level.is_none()
    }
}

fn parse_level(text: &str) -> Result<Option<tracing::Level>, String> {
    use tracing::Level;
    Ok(Some(match text.trim().to_ascii_lowercase().as_str() {
        "error" => Level::ERROR,
        "warn" | "warning" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        "off" | "none" => return Ok(None),
        _ => {
            return Err(format!(
                "{text:?} is not error, warn, info, debug, trace or off"
            ));
        }
    }))
}

/// Installs the stderr logger; with level `off`, installs nothing, so every
/// event is skipped at its call site.
pub fn init(settings: LogSettings) {
    if let Some(max) = settings.level {
        // Fails only if a logger is already installed, which is harmless.
        let _ = tracing::subscriber::set_global_default(StderrLog {
            max,
            json: settings.json,
        });
    }
}

/// Prints one error line without a logger, in the same shape as the
/// logger's text lines: for failures before the settings are known.
pub fn early_error(message: &str) {
    early_line(&format!("error: {message}"));
}

/// Prints `envinit: LINE` on stderr without a logger.
pub fn early_line(line: &str) {
    let _ = std::io::stderr().write_all(format!("envinit: {line}\n").as_bytes());
}

/// The same for a warning (VM boot, before logging is set up).
pub fn early_warning(message: &str) {
    let _ = std::io::stderr().write_all(format!("envinit: warn: {message}\n").as_bytes());
}

struct StderrLog {
    max: Level,
    json: bool,
}

impl Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let level = level_name(*event.metadata().level());
        let mut line = String::with_capacity(128);
        if self.json {
            line.push_str("{\"level\":\"");
            line.push_str(level);
            line.push('"');
            event.record(&mut JsonFields(&mut line));
            line.push_str("}\n");
        } else {
            line.push_str("envinit: ");
            line.push_str(level);
            line.push(':');
            event.record(&mut TextFields(&mut line));
            line.push('\n');
        }
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// A warning line with an `error` field, out of line: each `tracing` event
/// costs the binary a few hundred bytes, so the common shapes share one.
#[cold]
#[inline(never)]
pub fn warn_error(message: &str, error: &str) {
    tracing::warn!(error, "{message}");
}

/// A warning line that is only a message (shared, as [`warn_error`]).
#[cold]
#[inline(never)]
pub fn warn(message: &str) {
    tracing::warn!("{message}");
}

/// An error line that is only a message (shared, as [`warn_error`]).
#[cold]
#[inline(never)]
pub fn error(message: &str) {
    tracing::error!("{message}");
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// `message key=value key="two words"`. Strings and integers are appended
/// directly; only other values go through `fmt`.
struct TextFields<'a>(&'a mut String);

impl TextFields<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(' ');
        if field.name() != "message" {
            self.0.push_str(field.name());
            self.0.push('=');
        }
    }
}

impl Visit for TextFields<'_> {
    // envinit logs no 128-bit integers: these only keep core's 128-bit
    // formatting (about 1.5 KiB) out of the binary, as record_f64 does for
    // floats.
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.record_u64(field, u64::try_from(value).unwrap_or(u64::MAX));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.record_i64(
            field,
            i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX }),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        if field.name() != "message" && (value.is_empty() || value.contains([' ', '"', '='])) {
            let _ = write!(self.0, "{value:?}");
        } else {
            self.0.push_str(value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        push_u64(self.0, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        if value < 0 {
            self.0.push('-');
        }
        push_u64(self.0, value.unsigned_abs());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        let _ = write!(self.0, "{value:?}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        push_f64(self.0, value);
    }
}

/// Appends `value` with three decimals, without core's float formatting
/// (8 KiB of the binary that tracing's default `record_f64` would pull in;
/// envinit logs no floats, this only keeps the vtable small).
fn push_f64(out: &mut String, value: f64) {
    if !value.is_finite() {
        out.push_str("null");
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    let millis = (value.abs() * 1000.0).round() as u64;
    push_u64(out, millis / 1000);
    out.push('.');
    let frac = millis % 1000;
    for digit in [frac / 100, frac / 10 % 10, frac % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Appends the decimal digits of `value`.
fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|d| char::from(*d)));
}

/// `,"key":value` pairs of one JSON object.
struct JsonFields<'a>(&'a mut String);

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        let _ = write!(self.0, ",\"{}\":", field.name());
    }
}

impl Visit for JsonFields<'_> {
    // envinit logs no 128-bit integers: these only keep core's 128-bit
    // formatting (about 1.5 KiB) out of the binary, as record_f64 does for
    // floats.
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.record_u64(field, u64::try_from(value).unwrap_or(u64::MAX));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.record_i64(
            field,
            i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX }),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        push_u64(self.0, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_string(self.0, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        push_json_string(self.0, &format!("{value:?}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        push_f64(self.0, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_without_fmt() {
        for n in [0u64, 7, 10, 143, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn floats_without_core_formatting() {
        for (v, want) in [
            (0.0, "0.000"),
            (1.5, "1.500"),
            (-2.25, "-2.250"),
            (f64::NAN, "null"),
        ] {
            let mut out = String::new();
            push_f64(&mut out, v);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
