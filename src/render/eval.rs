//! Evaluation and assembly: walks a parsed template once, computes every
//! expression and condition in Rust (values, formatters, arithmetic, truth,
//! loop items) and appends the text and the values to the output as it
//! goes. An `if` evaluates only the branch its condition takes and a `for`
//! its body once per item: an unset variable in an untaken branch (or in
//! the body of a loop over an empty list) is no error.
//!
//! The output's byte ranges that hold a value read from a secret
//! (`secrets.NAME`, an `X_FILE`, or a loop item from such a list) are
//! recorded, for `--diff` to mask.
//!
//! Problems are collected, each once per position and message, and
//! evaluation goes on after one (so a template's problems are all
//! reported); the output is returned only when there was none.
//!
//! # Limits
//!
//! Output at most [`MAX_OUTPUT`] bytes and at most [`MAX_STEPS`]
//! expressions, conditions and loop iterations per template, checked while
//! evaluating, so nested loops cannot make envinit allocate without bound.

use std::collections::HashSet;
use std::ops::Range;
use std::rc::Rc;

use super::ast::{Cond, Expr, Node, Parsed, Primary, Problem};
use super::case;
use super::formatters::{self, Op};
use super::values::{Fact, Values};

/// The largest output of one template (16 MiB).
pub const MAX_OUTPUT: usize = 16 << 20;

/// The most expressions, conditions and loop iterations one template may
/// evaluate.
pub const MAX_STEPS: usize = 100_000;

/// Evaluation stopped at a limit (a problem was recorded).
struct Stop;

struct Eval<'a> {
    src: &'a str,
    values: &'a Values,
    problems: Vec<Problem>,
    seen: HashSet<(usize, String)>,
    /// The loop items, each with whether its list came from a secret.
    items: Vec<(Rc<str>, bool)>,
    /// A secret's loop item was used in the expression being evaluated.
    tainted: bool,
    /// The output so far (never more than [`MAX_OUTPUT`] bytes).
    out: String,
    /// The byte ranges of `out` that hold a secret's value.
    secret: Vec<Range<usize>>,
    steps: usize,
}

/// A rendered template: its text, and the byte ranges of it that hold a
/// value read from a secret.
pub(crate) type Output = (String, Vec<Range<usize>>);

/// Renders a parsed template, or returns every problem evaluation found.
pub(crate) fn render(src: &str, parsed: &Parsed, values: &Values) -> Result<Output, Vec<Problem>> {
    let mut eval = Eval {
        src,
        values,
        problems: Vec::new(),
        seen: HashSet::new(),
        items: Vec::new(),
        tainted: false,
        out: String::with_capacity(src.len()),
        secret: Vec::new(),
        steps: 0,
    };
    let stopped = eval.nodes(&parsed.nodes).is_err();
    if stopped || !eval.problems.is_empty() {
        return Err(eval.problems);
    }
    Ok((eval.out, eval.secret))
}

impl Eval<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        if self.seen.insert((offset, message.clone())) {
            self.problems.push(Problem { offset, message });
        }
    }

    fn step(&mut self, offset: usize) -> Result<(), Stop> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.problem(
                offset,
                format!("the template evaluates more than {MAX_STEPS} expressions, conditions and loop iterations: shorten the lists it loops over"),
            );
            return Err(Stop);
        }
        Ok(())
    }

    /// Appends `text` (which starts at `offset`, or is the value of the
    /// expression there), unless the output would exceed [`MAX_OUTPUT`].
    fn emit(&mut self, offset: usize, text: &str) -> Result<(), Stop> {
        if self.out.len().saturating_add(text.len()) > MAX_OUTPUT {
            self.problem(
                offset,
                "the output would be larger than 16 MiB: shorten the template or its values".into(),
            );
            return Err(Stop);
        }
        self.out.push_str(text);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node]) -> Result<(), Stop> {
        for node in nodes {
            match node {
                Node::Text { start, end } => {
                    let src = self.src;
                    self.emit(*start, src.get(*start..*end).unwrap_or(""))?;
                }
                Node::Value { expr } => {
                    self.step(expr.offset)?;
                    let reads = self.values.secret_reads();
                    self.tainted = false;
                    if let Some(text) = self.expr(expr) {
                        let start = self.out.len();
                        self.emit(expr.offset, &text)?;
                        if self.tainted || self.values.secret_reads() != reads {
                            self.secret.push(start..self.out.len());
                        }
                    }
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let Some(cond) = cond else { continue };
                    self.step(cond.offset)?;
                    let Some(truth) = self.cond(cond) else {
                        continue;
                    };
                    self.nodes(if truth { then } else { otherwise })?;
                }
                Node::For { source, body } => {
                    let Some(source) = source else { continue };
                    self.step(source.offset)?;
                    let reads = self.values.secret_reads();
                    self.tainted = false;
                    let Some(list) = self.expr(source) else {
                        continue;
                    };
                    let secret = self.tainted || self.values.secret_reads() != reads;
                    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                        self.step(source.offset)?;
                        self.items.push((Rc::from(item), secret));
                        let result = self.nodes(body);
                        self.items.pop();
                        result?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A primary's value: `Ok(None)` when unset, `Err` when a problem was
    /// recorded.
    fn primary(&mut self, primary: &Primary, offset: usize) -> Result<Option<Rc<str>>, ()> {
        let got = match primary {
            Primary::Env(name) => self.values.env(name),
            Primary::Secret(name) => self.values.secret(name),
            Primary::Fact(fact) => self.values.fact(*fact).map(|v| Some(Rc::from(v))),
            Primary::Str(s) => Ok(Some(Rc::from(s.as_str()))),
            Primary::Item(depth, _) => {
                let (item, secret) = self
                    .items
                    .get(*depth)
                    .cloned()
                    .unwrap_or_else(|| (Rc::from(""), false));
                self.tainted |= secret;
                Ok(Some(item))
            }
        };
        got.map_err(|message| self.problem(offset, message))
    }

    fn cond(&mut self, cond: &Cond) -> Option<bool> {
        let got = self.primary(&cond.primary, cond.offset).ok()?;
        let truth = got.is_some_and(|v| !formatters::is_false(&v));
        Some(truth != cond.negate)
    }

    /// An expression's text, `None` when a problem was recorded.
    fn expr(&mut self, expr: &Expr) -> Option<String> {
        let got = self.primary(&expr.primary, expr.offset).ok()?;
        // One rule for variables and secrets: an empty value counts as
        // unset; `| default ""` is how a template accepts one on purpose.
        let empty = got.as_deref() == Some("")
            && matches!(expr.primary, Primary::Env(_) | Primary::Secret(_));
        let mut value: Option<String> = got.filter(|_| !empty).map(|v| v.to_string());
        let mut changed = false;
        for filter in &expr.filters {
            if let Op::Default(fallback) = &filter.op {
                if value.as_deref().is_none_or(str::is_empty) {
                    value = Some(fallback.clone());
                    changed = true;
                }
                continue;
            }
            let Some(current) = value.take() else {
                self.unset(expr, true, empty);
                return None;
            };
            value = Some(match &filter.op {
                Op::Upper => case::upper(&current),
                Op::Lower => case::lower(&current),
                Op::Json => formatters::json(&current),
                Op::Shell => formatters::shell(&current),
                Op::Arith(op, n) => {
                    let Ok(x) = current.parse::<i64>() else {
                        let subject = subject(&expr.primary);
                        let after = if changed {
                            " after the formatters before it"
                        } else {
                            ""
                        };
                        let range =
                            if !current.is_empty() && current.bytes().all(|b| b.is_ascii_digit()) {
                                " in the range of a signed 64-bit integer"
                            } else {
                                ""
                            };
                        self.problem(
                            filter.offset,
                            format!("{} needs a whole number{range}, but {subject}{after} is not one: make it digits such as 4", op.name()),
                        );
                        return None;
                    };
                    match op.apply(x, *n) {
                        Some(r) => r.to_string(),
                        None => {
                            self.problem(
                                filter.offset,
                                format!("{} {n} overflows: the result must fit in a signed 64-bit integer ({}..={})", op.name(), i64::MIN, i64::MAX),
                            );
                            return None;
                        }
                    }
                }
                Op::Default(_) => current,
            });
            changed = true;
        }
        if value.is_none() {
            self.unset(expr, false, empty);
        }
        value
    }

    /// Reports an expression with no value: unset, or (`empty`) set to
    /// nothing, which counts the same.
    fn unset(&mut self, expr: &Expr, before_formatter: bool, empty: bool) {
        let first = if before_formatter { " first" } else { "" };
        let message = match &expr.primary {
            Primary::Env(name) if empty && self.values.reads_file(name) => format!(
                "{name}_FILE names an empty file: put the value in it, or accept an empty value on purpose{first}: {{{{ {name} | default \"\" }}}}"
            ),
            Primary::Env(name) if empty => format!(
                "{name} is set but empty: give it a value, or accept an empty value on purpose{first}: {{{{ {name} | default \"\" }}}}"
            ),
            Primary::Env(name) => format!(
                "{name} is not set: set it, or give a default{first}: {{{{ {name} | default \"...\" }}}}"
            ),
            Primary::Secret(name) if empty => format!(
                "secret {name} in {} is empty: put the value in it, or accept an empty value on purpose{first}: {{{{ secrets.{name} | default \"\" }}}}",
                self.values.secrets_dir().display()
            ),
            Primary::Secret(name) => format!(
                "secret {name} is not in {}: create it, or give a default{first}: {{{{ secrets.{name} | default \"...\" }}}}",
                self.values.secrets_dir().display()
            ),
            // Facts, strings and loop items always have a value.
            other => format!("{} has no value", subject(other)),
        };
        self.problem(expr.offset, message);
    }
}

/// How an error message names what an expression starts from (never its
/// value).
fn subject(primary: &Primary) -> String {
    match primary {
        Primary::Env(name) => name.clone(),
        Primary::Secret(name) => format!("secret {name}"),
        Primary::Fact(fact) => {
            let name = Fact::NAMES
                .iter()
                .find(|(_, f)| f == fact)
                .map_or("?", |(n, _)| n);
            format!("container.{name}")
        }
        Primary::Str(_) => "the string".into(),
        Primary::Item(_, name) => format!("the loop item {name}"),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::super::template::parse;
    use super::*;

    /// Text is copied byte for byte, next to values that look like syntax.
    #[test]
    fn text_and_values_are_copied_as_they_are() {
        let values = Values::new(
            [(OsString::from("V"), OsString::from("{\\ {{x}} \\"))],
            "/nonexistent".into(),
        );
        for text in [
            "",
            "{",
            "}",
            "\\",
            "\\\\",
            "\\{",
            "{\\",
            "a\\{b\\\\{c}",
            "{# not a comment #}",
            "{ x }",
            "server { location / { } }\n",
            "%d{yyyy-MM-dd} ${HOME} \\${x}",
            "  leading and trailing  \n\t",
            "end with backslash \\",
            "ü{\\}\\",
        ] {
            let src = format!("{text}{{{{ V }}}}{text}");
            let (parsed, problems) = parse(&src);
            assert!(problems.is_empty(), "{src:?}: {problems:?}");
            let (got, secret) = render(&src, &parsed.unwrap(), &values).unwrap();
            assert!(secret.is_empty());
            assert_eq!(got, format!("{text}{{\\ {{{{x}}}} \\{text}"), "{src:?}");
        }
    }
}
