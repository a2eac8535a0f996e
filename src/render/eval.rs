//! Evaluation and assembly: computes every expression and condition of a
//! parsed template in Rust (values, formatters, arithmetic, truth, loop
//! items), lowers the template to tinytemplate's syntax, and lets
//! tinytemplate assemble the output from the precomputed values.
//!
//! # Lowering
//!
//! Each scope (the template, or one iteration of a `for`) is a JSON array of
//! slots; the template's scope is `r`, the iteration scope of the loop at
//! depth `d` is `i<d>`. `{{ expr }}` becomes `{ r.N }` (the value,
//! printed unescaped), `{{ if }}` becomes `{{ if r.N }}` over a precomputed
//! boolean, `{{ for x in L }}` becomes `{{ for i0 in r.N }}` over an array
//! of iteration scopes. Untaken branches are not evaluated: an unset
//! variable there is no error.
//!
//! Text is escaped for tinytemplate, whose rules (tinytemplate 1.2,
//! `compiler.rs`) are: text runs to the next `{`; a text chunk that ends in
//! `\` loses that `\` and makes the following `{` literal. So every `{`
//! becomes `\{` (a `\` before it is then kept), and a run of `\` that ends
//! a text (before a tag or the end, where tinytemplate would eat one, or
//! panic at the very end) is printed from a constant instead. tinytemplate
//! finds a tag's end by scanning to the end of its line; to keep that linear
//! on long lines, every generated tag ends with `-}` followed by a newline
//! (the `-` trims that newline) and an empty value `{ e }` that shields the
//! next text from the trimming. The unit tests and the fuzz target check
//! that text round-trips byte for byte.
//!
//! # Limits
//!
//! Output at most [`MAX_OUTPUT`] bytes and at most [`MAX_STEPS`]
//! expressions, conditions and loop iterations per template, checked while
//! evaluating, so nested loops cannot make envinit allocate without bound.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::rc::Rc;

use serde_json::{Map, Value};
use tinytemplate::TinyTemplate;

use super::formatters::{self, Op};
use super::template::{Cond, Expr, Node, Parsed, Primary, Problem};
use super::values::{Fact, Values};

/// The largest output of one template (16 MiB).
pub const MAX_OUTPUT: usize = 16 << 20;

/// The most expressions, conditions and loop iterations one template may
/// evaluate.
pub const MAX_STEPS: usize = 100_000;

/// Evaluation stopped at a limit (a problem was recorded).
struct Stop;

struct Eval<'v> {
    values: &'v Values,
    problems: Vec<Problem>,
    seen: HashSet<(usize, String)>,
    items: Vec<Rc<str>>,
    output: usize,
    steps: usize,
}

/// Renders a parsed template, or returns every problem evaluation found.
pub(crate) fn render(src: &str, parsed: &Parsed, values: &Values) -> Result<String, Vec<Problem>> {
    let mut eval = Eval {
        values,
        problems: Vec::new(),
        seen: HashSet::new(),
        items: Vec::new(),
        output: 0,
        steps: 0,
    };
    let mut root = vec![Value::Null; parsed.root_slots];
    let stopped = eval.nodes(&parsed.nodes, &mut root).is_err();
    if stopped || !eval.problems.is_empty() {
        return Err(eval.problems);
    }
    let (lowered, runs) = lower(src, &parsed.nodes);
    let mut context = Map::new();
    context.insert("r".into(), Value::Array(root));
    context.insert(
        "b".into(),
        Value::Array(runs.into_iter().map(Value::String).collect()),
    );
    context.insert("e".into(), Value::String(String::new()));
    assemble(&lowered, &Value::Object(context)).map_err(|()| {
        vec![Problem {
            offset: 0,
            message: "internal error: tinytemplate could not assemble this template (please report it to envinit's authors)".into(),
        }]
    })
}

/// Lets tinytemplate assemble the output of lowered template text.
fn assemble(lowered: &str, context: &Value) -> Result<String, ()> {
    let mut tt = TinyTemplate::new();
    tt.set_default_formatter(&tinytemplate::format_unescaped);
    tt.add_template("t", lowered).map_err(|_| ())?;
    tt.render("t", context).map_err(|_| ())
}

/// The tinytemplate text for `nodes`, and the backslash runs it prints from
/// the constant `b`.
pub(crate) fn lower(src: &str, nodes: &[Node]) -> (String, Vec<String>) {
    let mut out = String::with_capacity(src.len() + src.len() / 8 + 64);
    let mut runs = Vec::new();
    lower_into(src, nodes, "r", &mut out, &mut runs);
    (out, runs)
}

/// Ends a generated tag: `-}` trims the newline that follows, which keeps
/// tinytemplate's end-of-line scans short; `{ e }` (empty) protects the
/// next text from that trimming.
const TAG_END: &str = "-}\n{ e }";

fn lower_into(src: &str, nodes: &[Node], scope: &str, out: &mut String, runs: &mut Vec<String>) {
    for node in nodes {
        match node {
            Node::Text { start, end } => {
                let text = src.get(*start..*end).unwrap_or("");
                let kept = text.trim_end_matches('\\');
                for (i, part) in kept.split('{').enumerate() {
                    if i > 0 {
                        out.push_str("\\{");
                    }
                    out.push_str(part);
                }
                if kept.len() < text.len() {
                    let _ = write!(out, "{{ b.{} {TAG_END}", runs.len());
                    runs.push(text[kept.len()..].to_string());
                }
            }
            Node::Value { slot, .. } => {
                let _ = write!(out, "{{ {scope}.{slot} {TAG_END}");
            }
            Node::If {
                slot,
                then,
                otherwise,
                ..
            } => {
                let _ = write!(out, "{{{{ if {scope}.{slot} -}}}}\n{{ e }}");
                lower_into(src, then, scope, out, runs);
                if !otherwise.is_empty() {
                    out.push_str("{{ else -}}\n{ e }");
                    lower_into(src, otherwise, scope, out, runs);
                }
                out.push_str("{{ endif -}}\n{ e }");
            }
            Node::For {
                slot, depth, body, ..
            } => {
                let inner = format!("i{depth}");
                let _ = write!(out, "{{{{ for {inner} in {scope}.{slot} -}}}}\n{{ e }}");
                lower_into(src, body, &inner, out, runs);
                out.push_str("{{ endfor -}}\n{ e }");
            }
        }
    }
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

    fn emit(&mut self, offset: usize, len: usize) -> Result<(), Stop> {
        self.output = self.output.saturating_add(len);
        if self.output > MAX_OUTPUT {
            self.problem(
                offset,
                "the output would be larger than 16 MiB: shorten the template or its values".into(),
            );
            return Err(Stop);
        }
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node], slots: &mut [Value]) -> Result<(), Stop> {
        for node in nodes {
            match node {
                Node::Text { start, end } => self.emit(*start, end - start)?,
                Node::Value { expr, slot } => {
                    self.step(expr.offset)?;
                    if let Some(text) = self.expr(expr) {
                        self.emit(expr.offset, text.len())?;
                        if let Some(s) = slots.get_mut(*slot) {
                            *s = Value::String(text);
                        }
                    }
                }
                Node::If {
                    cond,
                    slot,
                    then,
                    otherwise,
                } => {
                    let Some(cond) = cond else { continue };
                    self.step(cond.offset)?;
                    let Some(truth) = self.cond(cond) else {
                        continue;
                    };
                    if let Some(s) = slots.get_mut(*slot) {
                        *s = Value::Bool(truth);
                    }
                    self.nodes(if truth { then } else { otherwise }, slots)?;
                }
                Node::For {
                    source,
                    slot,
                    body,
                    body_slots,
                    ..
                } => {
                    let Some(source) = source else { continue };
                    self.step(source.offset)?;
                    let Some(list) = self.expr(source) else {
                        continue;
                    };
                    let mut iterations = Vec::new();
                    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                        self.step(source.offset)?;
                        let mut scope = vec![Value::Null; *body_slots];
                        self.items.push(Rc::from(item));
                        let result = self.nodes(body, &mut scope);
                        self.items.pop();
                        result?;
                        iterations.push(Value::Array(scope));
                    }
                    if let Some(s) = slots.get_mut(*slot) {
                        *s = Value::Array(iterations);
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
            Primary::Item(depth, _) => Ok(Some(
                self.items
                    .get(*depth)
                    .cloned()
                    .unwrap_or_else(|| Rc::from("")),
            )),
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
                Op::Upper => current.to_uppercase(),
                Op::Lower => current.to_lowercase(),
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
    use super::*;

    /// Lowering alone, over text only: tinytemplate must give it back.
    fn round_trip(text: &str) -> String {
        let nodes = vec![Node::Text {
            start: 0,
            end: text.len(),
        }];
        let (lowered, runs) = lower(text, &nodes);
        let mut context = Map::new();
        context.insert("r".into(), Value::Array(vec![]));
        context.insert(
            "b".into(),
            Value::Array(runs.into_iter().map(Value::String).collect()),
        );
        context.insert("e".into(), Value::String(String::new()));
        assemble(&lowered, &Value::Object(context)).unwrap()
    }

    #[test]
    fn text_round_trips_through_tinytemplate() {
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
            "{{",
            "{ x }",
            "{{ if x }}",
            "server { location / { } }\n",
            "%d{yyyy-MM-dd} ${HOME} \\${x}",
            "  leading and trailing  \n\t",
            "end with backslash \\",
            "ü{\\}\\",
        ] {
            assert_eq!(round_trip(text), text, "{text:?}");
        }
    }
}
