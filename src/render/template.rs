//! The template language's surface: finds the `{{ ... }}` tags in a
//! template, lexes and parses them into the tree of `ast.rs` ([`Node`]s
//! with byte offsets), and
//! checks everything that can be checked without values (syntax, names,
//! formatters and their arguments, balanced `if`/`for` blocks, nesting).
//!
//! Promises: only `{{` starts a tag; every other byte is text, kept as is.
//! In a run of three or more `{`, the last two open the tag (so JSON such as
//! `{{{ X | json }}: 1}` works). A tag ends at the first `}}` outside a
//! string. Every problem is collected (parsing goes on after a bad tag):
//! a string left open on its line is taken to end at the first `}}` after
//! its quote on that line (else at the line's end), and the tag with it;
//! only a tag or string still open at the end of the file ends the parse. No recursion here: nesting
//! deeper than [`MAX_DEPTH`] is an error, so the tree stays shallow for the
//! recursive passes that follow.

use super::ast::{Cond, Expr, Filter, Node, Parsed, Primary, Problem};
use super::formatters::{self, Arg};
use super::values::Fact;

/// The deepest nesting of `if` and `for` blocks.
pub const MAX_DEPTH: usize = 32;

/// The most `{{ }}` tags in one template (real configs have hundreds; the
/// limit bounds the memory of one render to tens of MiB).
pub const MAX_TAGS: usize = 100_000;

#[derive(Debug)]
enum Tok {
    Word(usize, usize),
    Str(String),
    Pipe,
}

/// A lexed string: its text, and where lexing goes on.
enum Lexed {
    /// Closed on its line: lexing goes on at this offset, after the quote.
    Closed(String, usize),
    /// Left open on its line (a problem was reported): taken to end, with
    /// its tag, at this offset.
    OpenOnLine(String, usize),
}

enum Block {
    If {
        cond: Option<Cond>,
        then: Option<Vec<Node>>,
    },
    For {
        source: Option<Expr>,
    },
}

struct Frame {
    block: Block,
    open: usize,
    nodes: Vec<Node>,
}

struct Parser<'a> {
    src: &'a str,
    problems: Vec<Problem>,
    frames: Vec<Frame>,
    root: Vec<Node>,
    /// The names of the open `for` loops' variables, outermost first.
    loop_vars: Vec<String>,
    /// Set when blocks do not match: the tree cannot be evaluated.
    broken: bool,
    /// Built on the first message that names another position.
    lines: Option<LineIndex>,
}

/// Parses `src`. Returns the tree (when its blocks are balanced, so it can
/// be evaluated to find more problems) and every problem found.
pub(crate) fn parse(src: &str) -> (Option<Parsed>, Vec<Problem>) {
    let mut p = Parser {
        src,
        problems: Vec::new(),
        frames: Vec::new(),
        root: Vec::new(),
        loop_vars: Vec::new(),
        broken: false,
        lines: None,
    };
    let completed = p.run();
    if !completed || p.broken {
        return (None, p.problems);
    }
    (Some(Parsed { nodes: p.root }), p.problems)
}

fn is_ident(word: &str) -> bool {
    let mut chars = word.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A word as shown in an error message: template text, shortened.
fn shown(word: &str) -> String {
    let short: String = word.chars().take(40).collect();
    if short.len() < word.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

/// Where the word starting at `i` ends: at whitespace, `|`, `"` or `}}`.
fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace()
            || b == b'|'
            || b == b'"'
            || (b == b'}' && bytes.get(i + 1) == Some(&b'}'))
        {
            break;
        }
        i += 1;
    }
    i
}

const LITERAL_HINT: &str = "to write a literal {{, use {{ \"{{\" }}";

impl<'a> Parser<'a> {
    /// Walks the template; false when it ended early (unclosed tag, or
    /// nesting too deep).
    fn run(&mut self) -> bool {
        let src = self.src;
        let bytes = src.as_bytes();
        let mut pos = 0;
        let mut tags = 0usize;
        while pos < bytes.len() {
            let Some(found) = src[pos..].find("{{") else {
                self.push(Node::Text {
                    start: pos,
                    end: bytes.len(),
                });
                break;
            };
            let mut open = pos + found;
            while bytes.get(open + 2) == Some(&b'{') {
                open += 1;
            }
            if open > pos {
                self.push(Node::Text {
                    start: pos,
                    end: open,
                });
            }
            tags += 1;
            if tags > MAX_TAGS {
                self.problem(
                    open,
                    format!(
                        "more than {MAX_TAGS} {{{{ }}}} tags in one template: split it into several"
                    ),
                );
                return false;
            }
            let Some((toks, end)) = self.lex_tag(open) else {
                return false;
            };
            if !self.tag(open, &toks) {
                return false;
            }
            pos = end;
        }
        let open_frames = std::mem::take(&mut self.frames);
        for frame in open_frames.iter().rev() {
            let (what, close) = match frame.block {
                Block::If { .. } => ("if", "endif"),
                Block::For { .. } => ("for", "endfor"),
            };
            self.problem(
                frame.open,
                format!("this {what} is never closed: add {{{{ {close} }}}} where it ends"),
            );
            self.broken = true;
        }
        true
    }

    fn problem(&mut self, offset: usize, message: String) {
        self.problems.push(Problem { offset, message });
    }

    fn push(&mut self, node: Node) {
        match self.frames.last_mut() {
            Some(frame) => frame.nodes.push(node),
            None => self.root.push(node),
        }
    }

    fn word(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or("")
    }

    /// Lexes the tag opened at `open` (the first `{` of `{{`): its tokens
    /// with offsets, and the offset just after its `}}`.
    fn lex_tag(&mut self, open: usize) -> Option<(Vec<(Tok, usize)>, usize)> {
        let bytes = self.src.as_bytes();
        let mut toks = Vec::new();
        let mut i = open + 2;
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= bytes.len() {
                self.problem(
                    open,
                    format!("this {{{{ is never closed: add }}}} after the expression, or {LITERAL_HINT}"),
                );
                return None;
            }
            match bytes[i] {
                b'}' if bytes.get(i + 1) == Some(&b'}') => return Some((toks, i + 2)),
                b'|' => {
                    toks.push((Tok::Pipe, i));
                    i += 1;
                }
                b'"' => match self.lex_string(i)? {
                    Lexed::Closed(text, next) => {
                        toks.push((Tok::Str(text), i));
                        i = next;
                    }
                    Lexed::OpenOnLine(text, end) => {
                        toks.push((Tok::Str(text), i));
                        return Some((toks, end));
                    }
                },
                _ => {
                    let start = i;
                    i = word_end(bytes, i);
                    toks.push((Tok::Word(start, i), start));
                }
            }
        }
    }

    /// Lexes the string whose opening quote is at `start`; `None` when it
    /// is still open at the end of the template (the parse ends).
    fn lex_string(&mut self, start: usize) -> Option<Lexed> {
        let mut text = String::new();
        let mut i = start + 1;
        loop {
            let rest = self.src.get(i..)?;
            let Some(c) = rest.chars().next() else {
                self.problem(
                    start,
                    "this string is never closed: add \" at its end".into(),
                );
                return None;
            };
            match c {
                '"' => return Some(Lexed::Closed(text, i + 1)),
                '\n' => {
                    self.problem(
                        start,
                        "this string is never closed on its line: add \" at its end".into(),
                    );
                    // Go on as if it were closed where the tag most likely
                    // ends: at the first }} after the quote on its line,
                    // else at the line's end; the rest of the file is still
                    // checked.
                    let line = self.src.get(start..i).unwrap_or("");
                    return Some(match line.find("}}") {
                        Some(at) => {
                            let text = line.get(1..at).unwrap_or("").to_string();
                            Lexed::OpenOnLine(text, start + at + 2)
                        }
                        None => Lexed::OpenOnLine(text, i),
                    });
                }
                '\\' => match rest[1..].chars().next() {
                    Some(e @ ('"' | '\\')) => {
                        text.push(e);
                        i += 2;
                    }
                    _ => {
                        self.problem(
                            i,
                            "unknown escape in string: write \\\" for a quote and \\\\ for a backslash".into(),
                        );
                        i += 1;
                    }
                },
                c => {
                    text.push(c);
                    i += c.len_utf8();
                }
            }
        }
    }

    /// Handles one tag; false to stop parsing (nesting too deep).
    fn tag(&mut self, open: usize, toks: &[(Tok, usize)]) -> bool {
        let Some((first, first_at)) = toks.first() else {
            self.problem(
                open,
                format!("empty {{{{ }}}}: put a variable name inside, or {LITERAL_HINT}"),
            );
            return true;
        };
        let keyword = match first {
            Tok::Word(s, e) => self.word(*s, *e),
            _ => "",
        };
        let rest = &toks[1..];
        match keyword {
            "if" => return self.open_if(open, *first_at, rest),
            "else" => self.else_tag(*first_at, rest),
            "endif" => {
                self.expect_end(rest, "endif");
                self.close(*first_at, true);
            }
            "for" => return self.open_for(open, *first_at, rest),
            "endfor" => {
                self.expect_end(rest, "endfor");
                self.close(*first_at, false);
            }
            _ => {
                if let Some(expr) = self.expr(open, toks) {
                    self.push(Node::Value { expr });
                }
            }
        }
        true
    }

    /// `{{ if ... }}` (the keyword at `at`): opens a block; false when
    /// nesting is too deep.
    fn open_if(&mut self, open: usize, at: usize, rest: &[(Tok, usize)]) -> bool {
        if self.frames.len() >= MAX_DEPTH {
            return self.too_deep(at);
        }
        let cond = self.cond(open, rest);
        self.frames.push(Frame {
            block: Block::If { cond, then: None },
            open: at,
            nodes: Vec::new(),
        });
        true
    }

    /// `{{ else }}` (the keyword at `at`): the open `if`'s nodes so far
    /// become its `then`.
    fn else_tag(&mut self, at: usize, rest: &[(Tok, usize)]) {
        self.expect_end(rest, "else");
        match self.frames.last_mut() {
            Some(Frame {
                block: Block::If {
                    then: then @ None, ..
                },
                nodes,
                ..
            }) => *then = Some(std::mem::take(nodes)),
            Some(Frame {
                block: Block::If { .. },
                ..
            }) => {
                self.problem(at, "a second else in the same if: remove one".into());
                self.broken = true;
            }
            _ => {
                self.problem(
                    at,
                    "else without an open if: add {{ if NAME }} before it, or remove it".into(),
                );
                self.broken = true;
            }
        }
    }

    /// `{{ for ... }}` (the keyword at `at`): opens a block and its loop
    /// variable; false when nesting is too deep.
    fn open_for(&mut self, open: usize, at: usize, rest: &[(Tok, usize)]) -> bool {
        if self.frames.len() >= MAX_DEPTH {
            return self.too_deep(at);
        }
        let (var, source) = self.for_tag(open, rest);
        self.loop_vars.push(var);
        self.frames.push(Frame {
            block: Block::For { source },
            open: at,
            nodes: Vec::new(),
        });
        true
    }

    fn too_deep(&mut self, at: usize) -> bool {
        self.problem(
            at,
            format!("if and for blocks are nested deeper than {MAX_DEPTH}: simplify the template"),
        );
        false
    }

    fn expect_end(&mut self, rest: &[(Tok, usize)], keyword: &str) {
        if let Some((_, at)) = rest.first() {
            self.problem(
                *at,
                format!("{keyword} takes nothing after it: write {{{{ {keyword} }}}}"),
            );
        }
    }

    /// Closes the innermost block with `endif` (`is_if`) or `endfor`.
    fn close(&mut self, at: usize, is_if: bool) {
        let (closer, opener) = if is_if {
            ("endif", "if")
        } else {
            ("endfor", "for")
        };
        let matches = match self.frames.last() {
            Some(Frame {
                block: Block::If { .. },
                ..
            }) => is_if,
            Some(Frame {
                block: Block::For { .. },
                ..
            }) => !is_if,
            None => {
                self.problem(
                    at,
                    format!("{closer} without an open {opener}: remove it, or add {{{{ {opener} ... }}}} before it"),
                );
                self.broken = true;
                return;
            }
        };
        if !matches {
            let (open_kw, open_close) = if is_if {
                ("for", "endfor")
            } else {
                ("if", "endif")
            };
            let open_at = self.frames.last().map_or(0, |f| f.open);
            let src = self.src;
            let (line, col) = self
                .lines
                .get_or_insert_with(|| LineIndex::new(src))
                .position(src, open_at);
            self.problem(
                at,
                format!(
                    "{closer} cannot close the {open_kw} opened at line {line} column {col}: add {{{{ {open_close} }}}} before it"
                ),
            );
            self.broken = true;
            return;
        }
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let node = match frame.block {
            Block::If { cond, then } => {
                let (then, otherwise) = match then {
                    Some(then) => (then, frame.nodes),
                    None => (frame.nodes, Vec::new()),
                };
                Node::If {
                    cond,
                    then,
                    otherwise,
                }
            }
            Block::For { source } => {
                self.loop_vars.pop();
                Node::For {
                    source,
                    body: frame.nodes,
                }
            }
        };
        self.push(node);
    }

    /// `if [not] PRIMARY`.
    fn cond(&mut self, open: usize, rest: &[(Tok, usize)]) -> Option<Cond> {
        let (negate, rest) = match rest.first() {
            Some((Tok::Word(s, e), _)) if self.word(*s, *e) == "not" => (true, &rest[1..]),
            _ => (false, rest),
        };
        let Some((tok, at)) = rest.first() else {
            self.problem(
                open,
                "if needs a condition: {{ if NAME }}, {{ if secrets.NAME }} or {{ if container.memory_limited }}".into(),
            );
            return None;
        };
        let primary = self.primary(tok, *at)?;
        if let Some((tok, at)) = rest.get(1) {
            let msg = match tok {
                Tok::Pipe => {
                    "if takes a name, not formatters: compute the value in the branch instead"
                        .to_string()
                }
                _ => "if takes one name: remove what follows it".to_string(),
            };
            self.problem(*at, msg);
            return None;
        }
        Some(Cond {
            primary,
            offset: *at,
            negate,
        })
    }

    /// `for VAR in EXPR`: the variable's name and the source, `None` when
    /// bad.
    fn for_tag(&mut self, open: usize, rest: &[(Tok, usize)]) -> (String, Option<Expr>) {
        let usage = "write {{ for item in NAME }}";
        let var = match rest.first() {
            Some((Tok::Word(s, e), _))
                if is_ident(self.word(*s, *e)) && self.word(*s, *e) != "in" =>
            {
                self.word(*s, *e).to_string()
            }
            Some((_, at)) => {
                self.problem(
                    *at,
                    format!("for needs a loop variable name (letters, digits, _): {usage}"),
                );
                return (String::new(), None);
            }
            None => {
                self.problem(
                    open,
                    format!("for needs a loop variable and a list: {usage}"),
                );
                return (String::new(), None);
            }
        };
        match rest.get(1) {
            Some((Tok::Word(s, e), _)) if self.word(*s, *e) == "in" => {}
            Some((_, at)) => {
                self.problem(*at, format!("expected in: {usage}"));
                return (var, None);
            }
            None => {
                self.problem(open, format!("for needs in and a list: {usage}"));
                return (var, None);
            }
        }
        if rest.len() < 3 {
            self.problem(open, format!("for needs a list after in: {usage}"));
            return (var, None);
        }
        let source = self.expr(open, &rest[2..]);
        (var, source)
    }

    /// `PRIMARY (| NAME [ARG])*`.
    fn expr(&mut self, open: usize, toks: &[(Tok, usize)]) -> Option<Expr> {
        let Some((first, first_at)) = toks.first() else {
            self.problem(open, "expected a value".into());
            return None;
        };
        let primary = self.primary(first, *first_at);
        let mut filters = Vec::new();
        let mut ok = primary.is_some();
        let mut i = 1;
        while i < toks.len() {
            let (tok, at) = &toks[i];
            if !matches!(tok, Tok::Pipe) {
                self.problem(
                    *at,
                    format!(
                        "unexpected {}: formatters follow |, e.g. {{{{ NAME | upper }}}}",
                        self.describe(tok)
                    ),
                );
                return None;
            }
            let Some((name_tok, name_at)) = toks.get(i + 1) else {
                self.problem(
                    *at,
                    format!("| needs a formatter after it: {}", formatters::NAMES),
                );
                return None;
            };
            let name = match name_tok {
                Tok::Word(s, e) => self.word(*s, *e),
                other => {
                    self.problem(
                        *name_at,
                        format!(
                            "expected a formatter after |, found {}: use {}",
                            self.describe(other),
                            formatters::NAMES
                        ),
                    );
                    return None;
                }
            };
            let (arg, used) = match toks.get(i + 2) {
                Some((Tok::Str(s), _)) => (Arg::Str(s.clone()), 1),
                Some((Tok::Word(s, e), _)) => (Arg::Word(self.word(*s, *e).to_string()), 1),
                _ => (Arg::None, 0),
            };
            match formatters::parse(name, arg) {
                Ok(op) => filters.push(Filter {
                    op,
                    offset: *name_at,
                }),
                Err(message) => {
                    self.problem(*name_at, message);
                    ok = false;
                }
            }
            i += 2 + used;
        }
        let primary = primary?;
        ok.then_some(Expr {
            primary,
            offset: *first_at,
            filters,
        })
    }

    fn describe(&self, tok: &Tok) -> String {
        match tok {
            Tok::Word(s, e) => shown(self.word(*s, *e)),
            Tok::Str(_) => "a string".into(),
            Tok::Pipe => "|".into(),
        }
    }

    /// A name or string that starts an expression or a condition.
    fn primary(&mut self, tok: &Tok, at: usize) -> Option<Primary> {
        let word = match tok {
            Tok::Str(s) => return Some(Primary::Str(s.clone())),
            Tok::Pipe => {
                self.problem(
                    at,
                    "expected a name before |, e.g. {{ NAME | upper }}".into(),
                );
                return None;
            }
            Tok::Word(s, e) => self.word(*s, *e),
        };
        if let Some(name) = word.strip_prefix("secrets.") {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                && !name.contains("..");
            if !valid {
                self.problem(
                    at,
                    format!(
                        "{} is not a secret name: after secrets. use letters, digits, _, - and . (no / and no ..)",
                        shown(word)
                    ),
                );
                return None;
            }
            return Some(Primary::Secret(name.to_string()));
        }
        if let Some(fact) = word.strip_prefix("container.") {
            return match Fact::NAMES.iter().find(|(n, _)| *n == fact) {
                Some((_, f)) => Some(Primary::Fact(*f)),
                None => {
                    self.problem(
                        at,
                        format!(
                            "unknown container fact {}: use container.memory_bytes, container.memory_mib, container.cpus or container.memory_limited",
                            shown(fact)
                        ),
                    );
                    None
                }
            };
        }
        if matches!(
            word,
            "if" | "else" | "endif" | "for" | "endfor" | "in" | "not"
        ) {
            self.problem(
                at,
                format!("{word} is a keyword and cannot be used here: check the tag's spelling"),
            );
            return None;
        }
        if !is_ident(word) {
            self.problem(
                at,
                format!(
                    "{} is not a name: use a variable (letters, digits, _), secrets.NAME, container.FACT or a \"string\"; {LITERAL_HINT}",
                    shown(word)
                ),
            );
            return None;
        }
        if let Some(depth) = self.loop_vars.iter().rposition(|v| v == word) {
            return Some(Primary::Item(depth, word.to_string()));
        }
        Some(Primary::Env(word.to_string()))
    }
}

/// Turns byte offsets into 1-based line and column numbers (columns count
/// characters), built once per template that has problems.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes the line starts of `src`.
    pub(crate) fn new(src: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// The line and column of `offset` in `src`.
    pub(crate) fn position(&self, src: &str, offset: usize) -> (usize, usize) {
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = src
            .get(start..offset.min(src.len()))
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<(usize, usize, String)> {
        let (_, ps) = parse(src);
        let index = LineIndex::new(src);
        ps.into_iter()
            .map(|p| {
                let (l, c) = index.position(src, p.offset);
                (l, c, p.message)
            })
            .collect()
    }

    fn first(src: &str) -> (usize, usize, String) {
        problems(src).into_iter().next().expect("a problem")
    }

    #[test]
    fn text_only() {
        let (parsed, ps) = parse("server { listen 80; } ${x} %d{HH}");
        assert!(ps.is_empty());
        let nodes = parsed.unwrap().nodes;
        assert_eq!(nodes, vec![Node::Text { start: 0, end: 33 }]);
    }

    #[test]
    fn expressions() {
        let (parsed, ps) = parse(
            "a{{ X }}b{{ secrets.db-pw.txt | upper }}{{ container.cpus | div 2 | max 1 }}{{ \"{{\" }}",
        );
        assert!(ps.is_empty(), "{ps:?}");
        let parsed = parsed.unwrap();
        assert_eq!(parsed.nodes.len(), 6);
        let Node::Value { expr } = &parsed.nodes[4] else {
            panic!()
        };
        assert_eq!(expr.primary, Primary::Fact(Fact::Cpus));
        assert_eq!(expr.filters.len(), 2);
        let Node::Value { expr, .. } = &parsed.nodes[5] else {
            panic!()
        };
        assert_eq!(expr.primary, Primary::Str("{{".into()));
    }

    #[test]
    fn triple_braces_open_at_the_last_two() {
        let (parsed, ps) = parse("{{{ X }}}");
        assert!(ps.is_empty());
        let nodes = parsed.unwrap().nodes;
        assert_eq!(nodes[0], Node::Text { start: 0, end: 1 });
        assert!(matches!(nodes[1], Node::Value { .. }));
        assert_eq!(nodes[2], Node::Text { start: 8, end: 9 });
    }

    #[test]
    fn blocks_nest() {
        let src = "{{ if A }}{{ for x in L }}{{ x }}{{ for y in x }}{{ y }}{{ x }}{{ endfor }}{{ endfor }}{{ else }}no{{ endif }}";
        let (parsed, ps) = parse(src);
        assert!(ps.is_empty(), "{ps:?}");
        let parsed = parsed.unwrap();
        assert_eq!(parsed.nodes.len(), 1);
        let Node::If {
            then, otherwise, ..
        } = &parsed.nodes[0]
        else {
            panic!()
        };
        assert_eq!(otherwise.len(), 1);
        let Node::For {
            source: Some(outer),
            body,
        } = &then[0]
        else {
            panic!()
        };
        assert_eq!(outer.primary, Primary::Env("L".into()));
        assert_eq!(body.len(), 2);
        let Node::For {
            source: Some(source),
            body,
            ..
        } = &body[1]
        else {
            panic!()
        };
        assert_eq!(source.primary, Primary::Item(0, "x".into()));
        let Node::Value { expr } = &body[0] else {
            panic!()
        };
        assert_eq!(expr.primary, Primary::Item(1, "y".into()));
        let Node::Value { expr } = &body[1] else {
            panic!()
        };
        assert_eq!(expr.primary, Primary::Item(0, "x".into()));
    }

    #[test]
    fn errors_have_positions() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("ab{{ X ", (1, 3), "never closed"),
            ("{{ }}", (1, 1), "empty"),
            ("x\n  {{ X | uper }}", (2, 10), "unknown formatter \"uper\""),
            ("{{ X | div 0 }}", (1, 8), "divides by zero"),
            ("{{ X | div }}", (1, 8), "needs a whole number"),
            ("{{ X | mul \"2\" }}", (1, 8), "without quotes"),
            ("{{ X | upper 3 }}", (1, 8), "takes no argument"),
            ("{{ X | default }}", (1, 8), "default needs a value"),
            ("{{ X Y }}", (1, 6), "unexpected \"Y\""),
            ("{{ X | }}", (1, 6), "| needs a formatter"),
            ("{{ 9X }}", (1, 4), "is not a name"),
            ("{{ secrets.../etc }}", (1, 4), "not a secret name"),
            ("{{ secrets.a/b }}", (1, 4), "not a secret name"),
            ("{{ container.ram }}", (1, 4), "unknown container fact"),
            ("{{ \"abc }}\n", (1, 4), "string is never closed"),
            ("{{ \"a\\x\" }}", (1, 6), "unknown escape"),
            ("é{{ endif }}", (1, 5), "endif without an open if"),
            ("{{ endfor }}", (1, 4), "endfor without an open for"),
            ("{{ else }}", (1, 4), "else without an open if"),
            (
                "{{ if A }}\n{{ for x in B }}",
                (2, 4),
                "this for is never closed",
            ),
            (
                "{{ if A }}{{ endfor }}",
                (1, 14),
                "cannot close the if opened at line 1 column 4",
            ),
            (
                "{{ if A }}{{ else }}{{ else }}{{ endif }}",
                (1, 24),
                "second else",
            ),
            ("{{ if A | upper }}{{ endif }}", (1, 9), "not formatters"),
            ("{{ if }}{{ endif }}", (1, 1), "if needs a condition"),
            ("{{ for in L }}{{ endfor }}", (1, 8), "loop variable"),
            ("{{ for x of L }}{{ endfor }}", (1, 10), "expected in"),
            ("{{ for x in }}{{ endfor }}", (1, 1), "list after in"),
            ("{{ endif x }}", (1, 10), "takes nothing after it"),
            ("{{ X | json | | }}", (1, 15), "expected a formatter"),
            ("{{ in }}", (1, 4), "keyword"),
        ];
        for (src, (line, col), want) in cases {
            let (l, c, msg) = first(src);
            assert!(msg.contains(want), "{src:?}: {msg}");
            assert_eq!((l, c), (*line, *col), "{src:?}: {msg}");
        }
    }

    #[test]
    fn all_problems_are_collected() {
        let ps = problems("{{ A | uper }}\n{{ B | div 0 }}\n{{ C | lowr }}");
        assert_eq!(ps.len(), 3, "{ps:?}");
        assert_eq!(ps.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn nesting_is_limited() {
        let deep = "{{ if A }}".repeat(MAX_DEPTH + 1);
        let (parsed, ps) = parse(&deep);
        assert!(parsed.is_none());
        assert!(ps[0].message.contains("nested deeper"));
        let ok = format!(
            "{}{}",
            "{{ if A }}".repeat(MAX_DEPTH),
            "{{ endif }}".repeat(MAX_DEPTH)
        );
        assert!(parse(&ok).1.is_empty());
        // Very deep input is refused without deep recursion.
        let (_, ps) = parse(&"{{ for x in A }}".repeat(100_000));
        assert_eq!(ps.len(), 1);
    }

    #[test]
    fn tags_are_limited() {
        let (parsed, ps) = parse(&"{{A}}".repeat(MAX_TAGS + 1));
        assert!(parsed.is_none());
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].offset, MAX_TAGS * 5);
        assert!(ps[0].message.contains("more than 100000"), "{ps:?}");
        assert!(parse(&"{{A}}".repeat(MAX_TAGS)).1.is_empty());
    }

    #[test]
    fn columns_count_characters() {
        let src = "ü\u{1F600}\n\tab{{ X | nope }}";
        let (l, c, _) = first(src);
        assert_eq!((l, c), (2, 11));
    }
}
