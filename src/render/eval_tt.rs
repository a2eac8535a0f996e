//! TEMPORARY: the previous assembler, kept beside the direct one
//! (`eval.rs`) only for the differential check in `render_template`.
//!
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
pub(crate) use super::template::Problem;
use super::template::{Cond, Expr, Node, Parsed, Primary};
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

/// Counts one differential comparison: with `ENVINIT_DIFF_LOG` set (tests
/// only), appends a line to that file (`2` for the known flaw).
pub(crate) fn counted(known: bool) {
    #[cfg(not(test))]
    let _ = known;
    #[cfg(test)]
    if let Some(path) = std::env::var_os("ENVINIT_DIFF_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(if known { b"2\n" } else { b"1\n" });
        }
    }
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

/// TEMPORARY differential check: many templates through both assemblers
/// (`render_template` compares them and fails on a difference).
#[cfg(test)]
mod differential {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    use super::super::template::{self, Node, Primary};
    use super::super::{Values, render_template};
    use crate::container::Facts;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const POOL: &[&str] = &[
        "v",
        "42",
        "a, b,,c",
        "{\\}",
        "",
        "true",
        "false",
        "0",
        "-7",
        "x{{y}}z",
        "\\",
        "ü\u{1F600}",
        " spaced ",
        "9223372036854775807",
        "1G",
        "\n",
        "{ e }",
        "\\{",
        "p,q\\,r{",
    ];

    #[derive(Default)]
    struct Tally {
        templates: usize,
        ok: usize,
        err: usize,
    }

    fn secrets() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("envinit-diff-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(dir.join("pw"), "s3cr{t\\\n").unwrap();
        std::fs::write(dir.join("empty"), "").unwrap();
        dir
    }

    fn values(env: Vec<(String, String)>, secrets: &Path) -> Values {
        Values::new(
            env.into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            secrets.to_path_buf(),
        )
        .with_container(|| Facts {
            memory_bytes: 3 << 30,
            memory_limited: true,
            cpus: 2,
        })
    }

    fn add(p: &Primary, out: &mut Vec<String>) {
        if let Primary::Env(n) = p {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    }

    fn names(nodes: &[Node], out: &mut Vec<String>) {
        for node in nodes {
            match node {
                Node::Text { .. } => {}
                Node::Value { expr, .. } => add(&expr.primary, out),
                Node::If {
                    cond,
                    then,
                    otherwise,
                    ..
                } => {
                    if let Some(c) = cond {
                        add(&c.primary, out);
                    }
                    names(then, out);
                    names(otherwise, out);
                }
                Node::For { source, body, .. } => {
                    if let Some(s) = source {
                        add(&s.primary, out);
                    }
                    names(body, out);
                }
            }
        }
    }

    /// Renders `src` (through both assemblers) under `rounds` assignments of
    /// the pool's values to the variables it names.
    fn check(src: &str, rounds: usize, secrets: &Path, rng: &mut Rng, tally: &mut Tally) {
        let mut vars = Vec::new();
        if let (Some(parsed), _) = template::parse(src) {
            names(&parsed.nodes, &mut vars);
        }
        tally.templates += 1;
        for round in 0..rounds {
            let env: Vec<(String, String)> = vars
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    // Round 0: every variable a plain number; then random
                    // values, some unset.
                    let v = match round {
                        0 => "12",
                        1 => "v",
                        _ => {
                            let k = rng.below(POOL.len() + 2);
                            if k >= POOL.len() {
                                return None;
                            }
                            POOL[(k + i) % POOL.len()]
                        }
                    };
                    Some((n.clone(), v.to_string()))
                })
                .collect();
            match render_template("d", src.as_bytes(), &values(env, secrets)) {
                Ok(_) => tally.ok += 1,
                Err(lines) => {
                    assert!(
                        !lines.iter().any(|l| l.contains("assemblers differ")),
                        "{src:?}"
                    );
                    tally.err += 1;
                }
            }
        }
    }

    /// The string literals of Rust source (plain and raw) that hold `{{`.
    fn literals(rust: &str) -> Vec<String> {
        let b = rust.as_bytes();
        let mut found = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'r' && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"')) {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let start = i + 2 + hashes;
                    let close = format!("\"{}", "#".repeat(hashes));
                    if let Some(end) = rust[start..].find(&close) {
                        found.push(rust[start..start + end].to_string());
                        i = start + end + close.len();
                        continue;
                    }
                }
            }
            if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
                i += 3;
                continue;
            }
            if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
                i += 4;
                continue;
            }
            if b[i] == b'"' {
                let mut s = String::new();
                let mut j = i + 1;
                let mut chars = rust[j..].char_indices();
                while let Some((k, c)) = chars.next() {
                    match c {
                        '"' => {
                            j += k + 1;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, '0')) => s.push('\0'),
                            Some((_, '\n')) => {
                                while let Some((_, c)) = chars.clone().next() {
                                    if !c.is_whitespace() {
                                        break;
                                    }
                                    chars.next();
                                }
                            }
                            Some((_, 'u')) => {
                                let rest = chars.as_str();
                                if let Some(end) = rest.find('}') {
                                    let hex = &rest[1..end];
                                    if let Some(c) =
                                        u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                                    {
                                        s.push(c);
                                    }
                                    for _ in 0..=end {
                                        chars.next();
                                    }
                                }
                            }
                            Some((_, c)) => s.push(c),
                            None => {}
                        },
                        c => s.push(c),
                    }
                }
                if s.contains("{{") {
                    found.push(s);
                }
                i = j.max(i + 1);
                continue;
            }
            i += 1;
        }
        found
    }

    fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, ext, out);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p);
            }
        }
    }

    /// A well-formed template of text, values with formatters, ifs and
    /// loops.
    fn generated(rng: &mut Rng, depth: usize, loops: &mut Vec<String>, out: &mut String) {
        const TEXT: &[&str] = &[
            "{", "}", "\\", "\n", "x", "$", " ", "ü", "#", "{ e }", "\\\\", "-}", "{#", "#}",
            "\r\n", "\t",
        ];
        const VARS: &[&str] = &["V", "N", "L", "E", "A", "U", "secrets.pw", "secrets.empty"];
        const FILTERS: &[&str] = &[
            " | upper",
            " | lower",
            " | json",
            " | shell",
            " | default \"d{\\\\\"\"",
            " | default \"\"",
            " | default 5",
            " | percent 50",
            " | div 3",
            " | mul -2",
            " | add 7",
            " | sub 9223372036854775807",
            " | min 3",
            " | max 100",
        ];
        for _ in 0..rng.below(6) {
            match rng.below(if depth < 4 { 10 } else { 7 }) {
                0..=3 => {
                    for _ in 0..rng.below(5) {
                        out.push_str(TEXT[rng.below(TEXT.len())]);
                    }
                    while out.ends_with('{') {
                        out.pop();
                    }
                }
                4..=6 => {
                    out.push_str(if rng.below(2) == 0 { "{{ " } else { "{{" });
                    if !loops.is_empty() && rng.below(3) == 0 {
                        out.push_str(&loops[rng.below(loops.len())].clone());
                    } else if rng.below(8) == 0 {
                        out.push_str(
                            [
                                "\"s{\\\\\"",
                                "\"{{\"",
                                "container.cpus",
                                "container.memory_mib",
                            ][rng.below(4)],
                        );
                    } else {
                        out.push_str(VARS[rng.below(VARS.len())]);
                    }
                    for _ in 0..rng.below(3) {
                        out.push_str(FILTERS[rng.below(FILTERS.len())]);
                    }
                    out.push_str(if rng.below(2) == 0 { " }}" } else { "}}" });
                }
                7 | 8 => {
                    let not = if rng.below(2) == 0 { "not " } else { "" };
                    let var = VARS[rng.below(VARS.len())];
                    out.push_str(&format!("{{{{ if {not}{var} }}}}"));
                    generated(rng, depth + 1, loops, out);
                    if rng.below(2) == 0 {
                        out.push_str("{{ else }}");
                        generated(rng, depth + 1, loops, out);
                    }
                    out.push_str("{{ endif }}");
                }
                _ => {
                    let name = format!("i{depth}");
                    let source = if !loops.is_empty() && rng.below(3) == 0 {
                        loops[rng.below(loops.len())].clone()
                    } else {
                        VARS[rng.below(VARS.len())].to_string()
                    };
                    out.push_str(&format!("{{{{ for {name} in {source} }}}}"));
                    loops.push(name);
                    generated(rng, depth + 1, loops, out);
                    loops.pop();
                    out.push_str("{{ endfor }}");
                }
            }
        }
    }

    #[test]
    fn direct_and_tinytemplate_assemblers_agree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let secrets = secrets();
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let mut report = Vec::new();

        // 1. Files: examples/templates/**, docs' code blocks with {{.
        let mut tally = Tally::default();
        let mut paths = Vec::new();
        files(&root.join("examples"), ".tmpl", &mut paths);
        files(&root.join("tests"), ".tmpl", &mut paths);
        for p in &paths {
            let src = std::fs::read_to_string(p).unwrap();
            check(&src, 200, &secrets, &mut rng, &mut tally);
        }
        let mut docs = vec![root.join("README.md")];
        files(&root.join("docs"), ".md", &mut docs);
        for p in &docs {
            let md = std::fs::read_to_string(p).unwrap();
            for (i, block) in md.split("```").enumerate() {
                if i % 2 == 1 && block.contains("{{") {
                    check(block, 50, &secrets, &mut rng, &mut tally);
                }
            }
        }
        report.push(format!(
            "files ({} template files, docs' blocks): {} templates, {} renders ok, {} with problems",
            paths.len(),
            tally.templates,
            tally.ok,
            tally.err
        ));

        // 2. String literals with {{ in the tests, benches and fuzz target.
        let mut tally = Tally::default();
        let mut sources = Vec::new();
        files(&root.join("src"), ".rs", &mut sources);
        files(&root.join("tests"), ".rs", &mut sources);
        files(&root.join("benches"), ".rs", &mut sources);
        files(&root.join("fuzz/fuzz_targets"), ".rs", &mut sources);
        for p in &sources {
            let rust = std::fs::read_to_string(p).unwrap();
            for lit in literals(&rust) {
                check(&lit, 30, &secrets, &mut rng, &mut tally);
            }
        }
        report.push(format!(
            "literals ({} files): {} templates, {} renders ok, {} with problems",
            sources.len(),
            tally.templates,
            tally.ok,
            tally.err
        ));

        // 3. Random sequences of the fuzz dictionary's tokens and text.
        let dict: Vec<String> = std::fs::read_to_string(root.join("fuzz/render.dict"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix('"')?.strip_suffix('"').map(str::to_string))
            .map(|t| t.replace("\\\"", "\"").replace("\\\\", "\\"))
            .collect();
        assert!(dict.len() > 30, "{dict:?}");
        let extra = [
            "{",
            "}",
            "\\",
            "\n",
            "x",
            " ",
            "V",
            "N",
            "L",
            "E",
            "A",
            "i",
            "{{ for i in L }}",
            "{{ endfor }}",
            "{{ if V }}",
            "{{ else }}",
            "{{ endif }}",
            "{{ i }}",
            "\"a{\\\\\"",
            "-}",
            "{ e }",
        ];
        let mut tally = Tally::default();
        for _ in 0..100_000 {
            let mut src = String::new();
            for _ in 0..rng.below(24) {
                let k = rng.below(dict.len() + extra.len());
                src.push_str(if k < dict.len() {
                    &dict[k]
                } else {
                    extra[k - dict.len()]
                });
            }
            check(&src, 3, &secrets, &mut rng, &mut tally);
        }
        report.push(format!(
            "dictionary sequences: {} templates, {} renders ok, {} with problems",
            tally.templates, tally.ok, tally.err
        ));

        // 4. Generated well-formed templates.
        let mut tally = Tally::default();
        for _ in 0..100_000 {
            let mut src = String::new();
            generated(&mut rng, 0, &mut Vec::new(), &mut src);
            let env = vec![
                ("V".to_string(), POOL[rng.below(POOL.len())].to_string()),
                ("N".to_string(), "42".to_string()),
                ("L".to_string(), POOL[rng.below(POOL.len())].to_string()),
                ("E".to_string(), String::new()),
                ("A".to_string(), "a{,\\b, {{c}} ,".to_string()),
            ];
            tally.templates += 1;
            match render_template("g", src.as_bytes(), &values(env, &secrets)) {
                Ok(_) => tally.ok += 1,
                Err(lines) => {
                    assert!(
                        !lines.iter().any(|l| l.contains("assemblers differ")),
                        "{src:?}"
                    );
                    tally.err += 1;
                }
            }
        }
        report.push(format!(
            "generated templates: {} templates, {} renders ok, {} with problems",
            tally.templates, tally.ok, tally.err
        ));
        eprintln!("differential:\n  {}", report.join("\n  "));
    }
}
