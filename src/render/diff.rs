//! Diff: `--check --diff`, what a start or a reload would change, as a
//! unified diff (the format of `diff -u`, which `patch` applies), with
//! every value read from a secret masked.
//!
//! # Masking
//!
//! The new side (added lines, and context lines, which are the same on
//! both sides) is masked exactly: evaluation records the byte ranges of
//! the output that hold a value read from a secret (`secrets.NAME`, an
//! `X_FILE`, a loop item of such a list), and each is printed as `***`.
//!
//! The old side is what the file holds now, rendered from earlier values
//! that may be gone: where its secrets are cannot be known. So in a file
//! whose template names a secret or an `X_FILE` variable anywhere (in any
//! branch), a removed line is printed as it is only when the template has
//! that very line, without a tag; else as the longest text that a line of
//! the template has before its first tag and the removed line starts with,
//! then `***` (`password = ***`); else `***` whole. Nothing of a removed
//! line is printed but text the template itself holds. Files whose
//! template names no secret, and ini targets, are printed as they are.
//!
//! # Bounds
//!
//! Lines are aligned with Myers' algorithm once the common head and tail
//! are set aside, for at most [`MAX_EDITS`] inserted or deleted lines per
//! file: time O((N+M)·D), memory O(D²) (at most 2 MiB); a file that
//! differs more is shown with its changed middle as one replaced block.

use std::ops::Range;

use super::ast::{Node, Primary};
use super::values::Values;

/// The most lines inserted plus deleted that are aligned line by line in
/// one file.
pub const MAX_EDITS: usize = 1000;

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;

/// What is printed for a value read from a secret.
const MASK: &[u8] = b"***";

/// One line of a template as `--diff` shows a removed line: its text
/// before the first tag, and whether the line has no tag.
type Shape = (Vec<u8>, bool);

/// What `--diff` needs to mask one rendered file.
#[derive(Debug, Default)]
pub(crate) struct Masks {
    /// The byte ranges of the output that hold a secret's value, in order.
    pub secret: Vec<Range<usize>>,
    /// The template's lines, when it names a secret or an `X_FILE`
    /// variable anywhere: removed lines are printed only as these show.
    pub shapes: Option<Vec<Shape>>,
}

/// Whether any expression of `nodes`, in any branch, reads a secret or an
/// `X_FILE` (as the environment is now).
pub(crate) fn names_secret(nodes: &[Node], values: &Values) -> bool {
    let secret = |p: &Primary| match p {
        Primary::Secret(_) => true,
        Primary::Env(name) => values.reads_file(name),
        _ => false,
    };
    nodes.iter().any(|node| match node {
        Node::Text { .. } => false,
        Node::Value { expr } => secret(&expr.primary),
        Node::If {
            cond,
            then,
            otherwise,
        } => {
            cond.as_ref().is_some_and(|c| secret(&c.primary))
                || names_secret(then, values)
                || names_secret(otherwise, values)
        }
        Node::For { source, body } => {
            source.as_ref().is_some_and(|s| secret(&s.primary)) || names_secret(body, values)
        }
    })
}

/// The template's lines as `--diff` shows a removed line: a line without
/// a tag as it is (`exact`), else its text before the first tag.
pub(crate) fn shapes(src: &str) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = Vec::new();
    for line in src.as_bytes().split(|b| *b == b'\n') {
        let shape = match line.windows(2).position(|w| w == b"{{") {
            None => (line.to_vec(), true),
            Some(0) => continue,
            Some(tag) => (line[..tag].to_vec(), false),
        };
        if !shapes.contains(&shape) {
            shapes.push(shape);
        }
    }
    shapes
}

/// How a removed line of a file holding secrets is shown: as it is when a
/// line of the template is that very text; else as the longest text before
/// a tag it starts with, then `***`; else `***`.
fn show_old(out: &mut Vec<u8>, shapes: &[Shape], line: &[u8]) {
    let mut shown: &[u8] = b"";
    for (text, exact) in shapes {
        if *exact && text == line {
            shown = line;
            break;
        }
        if !*exact && text.len() > shown.len() && line.starts_with(text) {
            shown = text;
        }
    }
    out.extend_from_slice(shown);
    if shown.len() < line.len() {
        out.extend_from_slice(MASK);
    }
}

/// One step of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Same,
    Delete,
    Insert,
}

/// An edit script turning `a` into `b`: Myers' shortest one when at most
/// [`MAX_EDITS`] lines are inserted and deleted between the common head
/// and tail, else the middle deleted and inserted whole.
fn edits(a: &[&[u8]], b: &[&[u8]]) -> Vec<Edit> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut script = vec![Edit::Same; head];
    match myers(ma, mb) {
        Some(middle) => script.extend(middle),
        None => {
            script.extend(std::iter::repeat_n(Edit::Delete, ma.len()));
            script.extend(std::iter::repeat_n(Edit::Insert, mb.len()));
        }
    }
    script.extend(std::iter::repeat_n(Edit::Same, tail));
    script
}

/// Myers' greedy algorithm, keeping each round's furthest points to walk
/// back; `None` past [`MAX_EDITS`].
fn myers(a: &[&[u8]], b: &[&[u8]]) -> Option<Vec<Edit>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let limit = (a.len() + b.len()).min(MAX_EDITS) as isize;
    let off = limit + 1;
    let mut v = vec![0isize; 2 * limit as usize + 3];
    // Round d keeps v[k] for k = -d, -d+2, ..., d.
    let mut trace: Vec<u32> = Vec::new();
    let at = |k: isize| (k + off) as usize;
    let mut end = None;
    'rounds: for d in 0..=limit {
        for k in (-d..=d).step_by(2) {
            let mut x = if k == -d || (k != d && v[at(k - 1)] < v[at(k + 1)]) {
                v[at(k + 1)]
            } else {
                v[at(k - 1)] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[at(k)] = x;
            trace.push(x as u32);
            if x >= n && y >= m {
                end = Some(d);
                // The rest of this round is not needed to walk back.
                break 'rounds;
            }
        }
    }
    let d_end = end?;
    // Where round d's values start in `trace`: rounds 0..d hold d(d+1)/2.
    let start = |d: isize| (d * (d + 1) / 2) as usize;
    let get = |d: isize, k: isize| trace[start(d) + ((k + d) / 2) as usize] as isize;
    let mut script = Vec::with_capacity((n + m) as usize);
    let (mut x, mut y) = (n, m);
    for d in (1..=d_end).rev() {
        let k = x - y;
        let down = k == -d || (k != d && get(d - 1, k - 1) < get(d - 1, k + 1));
        let pk = if down { k + 1 } else { k - 1 };
        let px = get(d - 1, pk);
        let py = px - pk;
        let (sx, _) = if down { (px, py + 1) } else { (px + 1, py) };
        for _ in sx..x {
            script.push(Edit::Same);
        }
        script.push(if down { Edit::Insert } else { Edit::Delete });
        x = px;
        y = py;
    }
    for _ in 0..x {
        script.push(Edit::Same);
    }
    script.reverse();
    Some(script)
}

/// The lines of `text`, each with its `\n` (the last may lack one).
fn lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|b| *b == b'\n').collect()
}

/// What the diff of one file is between.
pub(crate) struct Sides<'a> {
    /// The DEST, as named.
    pub name: &'a str,
    /// What DEST holds now (`None`: there is none, or it was not read).
    pub old: Option<&'a [u8]>,
    /// Why the old content was not read, if it was not.
    pub unread: Option<&'a str>,
    /// Its mode now, if known.
    pub old_mode: Option<u32>,
    /// The rendered file.
    pub new: &'a [u8],
    /// The mode it would get.
    pub new_mode: u32,
    /// How to mask it.
    pub masks: &'a Masks,
}

/// Appends the unified diff of one file to `out`; false when nothing
/// differs.
pub(crate) fn file(out: &mut Vec<u8>, sides: &Sides) -> bool {
    let old = sides.old.unwrap_or(b"");
    let mode_differs = sides.old_mode.is_some_and(|m| m != sides.new_mode);
    if sides.old.is_some() && old == sides.new && !mode_differs {
        return false;
    }
    out.extend_from_slice(b"--- ");
    match (sides.old, sides.unread) {
        (Some(_), _) | (None, Some(_)) => out.extend_from_slice(sides.name.as_bytes()),
        (None, None) => out.extend_from_slice(b"/dev/null"),
    }
    if let (None, Some(why)) = (sides.old, sides.unread) {
        out.extend_from_slice(b" (");
        out.extend_from_slice(why.as_bytes());
        out.push(b')');
    }
    let mode = |out: &mut Vec<u8>, m: u32| {
        if mode_differs {
            out.extend_from_slice(b" (mode 0");
            for shift in [6, 3, 0] {
                out.push(b'0' + ((m >> shift) & 7) as u8);
            }
            out.push(b')');
        }
    };
    mode(out, sides.old_mode.unwrap_or(0));
    out.extend_from_slice(b"\n+++ ");
    out.extend_from_slice(sides.name.as_bytes());
    mode(out, sides.new_mode);
    out.push(b'\n');
    let (a, b) = (lines(old), lines(sides.new));
    let script = edits(&a, &b);
    // Byte offset of each new line, for the secret ranges.
    let mut starts = Vec::with_capacity(b.len());
    let mut offset = 0;
    for line in &b {
        starts.push(offset);
        offset += line.len();
    }
    let changes: Vec<usize> = (0..script.len())
        .filter(|i| script[*i] != Edit::Same)
        .collect();
    let (mut ai, mut bi, mut si) = (0usize, 0usize, 0usize);
    let mut c = 0;
    while c < changes.len() {
        // A hunk: changes at most 2 * CONTEXT unchanged lines apart, with
        // CONTEXT lines around.
        let first = changes[c];
        let mut last = first;
        while c + 1 < changes.len() && changes[c + 1] - last <= 2 * CONTEXT + 1 {
            c += 1;
            last = changes[c];
        }
        c += 1;
        let from = first.saturating_sub(CONTEXT);
        let to = (last + CONTEXT + 1).min(script.len());
        while si < from {
            step(script[si], &mut ai, &mut bi);
            si += 1;
        }
        let count = |e: Edit| script[from..to].iter().filter(|s| **s == e).count();
        let same = count(Edit::Same);
        out.extend_from_slice(b"@@ -");
        range(out, ai, same + count(Edit::Delete));
        out.extend_from_slice(b" +");
        range(out, bi, same + count(Edit::Insert));
        out.extend_from_slice(b" @@\n");
        while si < to {
            let edit = script[si];
            out.push(match edit {
                Edit::Same => b' ',
                Edit::Delete => b'-',
                Edit::Insert => b'+',
            });
            match (edit, &sides.masks.shapes) {
                (Edit::Delete, Some(shapes)) => {
                    let raw = a[ai].strip_suffix(b"\n");
                    show_old(out, shapes, raw.unwrap_or(a[ai]));
                    if raw.is_some() {
                        out.push(b'\n');
                    }
                }
                (Edit::Delete, None) => out.extend_from_slice(a[ai]),
                _ => masked(out, b[bi], starts[bi], &sides.masks.secret),
            }
            if out.last() != Some(&b'\n') {
                out.extend_from_slice(b"\n\\ No newline at end of file\n");
            }
            step(edit, &mut ai, &mut bi);
            si += 1;
        }
    }
    true
}

fn step(edit: Edit, a: &mut usize, b: &mut usize) {
    match edit {
        Edit::Same => {
            *a += 1;
            *b += 1;
        }
        Edit::Delete => *a += 1,
        Edit::Insert => *b += 1,
    }
}

/// A hunk's range as `diff -u` writes it: `START,LEN`, `START` for one
/// line, and the line before for none.
fn range(out: &mut Vec<u8>, start: usize, len: usize) {
    number(out, if len == 0 { start } else { start + 1 });
    if len != 1 {
        out.push(b',');
        number(out, len);
    }
}

/// A number in decimal.
fn number(out: &mut Vec<u8>, n: usize) {
    if n >= 10 {
        number(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
}

/// A new line starting at byte `start`, each run of it inside `secret`
/// printed as `***`.
fn masked(out: &mut Vec<u8>, line: &[u8], start: usize, secret: &[Range<usize>]) {
    let end = start + line.len();
    let first = secret.partition_point(|r| r.end <= start);
    let mut at = start;
    for r in secret[first..].iter().take_while(|r| r.start < end) {
        let (s, e) = (r.start.max(at), r.end.min(end));
        if s < e {
            out.extend_from_slice(&line[at - start..s - start]);
            out.extend_from_slice(MASK);
            at = e;
        }
    }
    out.extend_from_slice(&line[at - start..]);
    // A masked line end keeps the line's end.
    if line.ends_with(b"\n") && out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(a: &[&[u8]], b: &[&[u8]], script: &[Edit]) -> Vec<Vec<u8>> {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        for e in script {
            match e {
                Edit::Same => {
                    assert_eq!(a[i], b[j]);
                    out.push(a[i].to_vec());
                    i += 1;
                    j += 1;
                }
                Edit::Delete => i += 1,
                Edit::Insert => {
                    out.push(b[j].to_vec());
                    j += 1;
                }
            }
        }
        assert_eq!((i, j), (a.len(), b.len()));
        out
    }

    #[test]
    fn scripts_turn_one_side_into_the_other_and_are_shortest() {
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let a: Vec<Vec<u8>> = (0..next() % 40)
                .map(|_| vec![b'a' + (next() % 4) as u8])
                .collect();
            let b: Vec<Vec<u8>> = (0..next() % 40)
                .map(|_| vec![b'a' + (next() % 4) as u8])
                .collect();
            let (ra, rb): (Vec<&[u8]>, Vec<&[u8]>) = (
                a.iter().map(Vec::as_slice).collect(),
                b.iter().map(Vec::as_slice).collect(),
            );
            let script = edits(&ra, &rb);
            let got = apply(&ra, &rb, &script);
            assert_eq!(got, b);
            // Shortest: as many Same as the longest common subsequence.
            let mut lcs = vec![vec![0usize; rb.len() + 1]; ra.len() + 1];
            for i in (0..ra.len()).rev() {
                for j in (0..rb.len()).rev() {
                    lcs[i][j] = if ra[i] == rb[j] {
                        lcs[i + 1][j + 1] + 1
                    } else {
                        lcs[i + 1][j].max(lcs[i][j + 1])
                    };
                }
            }
            let same = script.iter().filter(|e| **e == Edit::Same).count();
            assert_eq!(same, lcs[0][0]);
        }
    }

    #[test]
    fn past_the_bound_the_middle_is_replaced_whole() {
        let a: Vec<String> = (0..3000).map(|i| format!("a{i}\n")).collect();
        let b: Vec<String> = (0..3000).map(|i| format!("b{}\n", i % 7)).collect();
        let mut ra: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
        let mut rb: Vec<&[u8]> = b.iter().map(|s| s.as_bytes()).collect();
        ra.insert(0, b"same\n");
        rb.insert(0, b"same\n");
        let script = edits(&ra, &rb);
        assert_eq!(apply(&ra, &rb, &script).len(), rb.len());
        assert_eq!(script[0], Edit::Same);
        assert_eq!(script[1], Edit::Delete);
        assert_eq!(script[3001], Edit::Insert);
    }

    fn show(src: &str, line: &str) -> String {
        let mut out = Vec::new();
        show_old(&mut out, &shapes(src), line.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn removed_lines_show_only_the_templates_text() {
        let t = "user = {{ USER }}\npassword = {{ secrets.pw }}\n\
                 dsn = pg://{{ USER }}:{{ secrets.pw }}@{{ HOST }}/db\n\
                 {{ if SMTP }}smtp = {{ SMTP }}\nport = 25\n{{ endif }}literal\n\
                 {{ KEY }}\n";
        assert_eq!(show(t, "password = hunter2"), "password = ***");
        assert_eq!(show(t, "user = bob"), "user = ***");
        assert_eq!(show(t, "dsn = pg://bob:hunter2@db/db"), "dsn = pg://***");
        assert_eq!(show(t, "port = 25"), "port = 25");
        assert_eq!(show(t, "user = "), "user = ");
        // A line of a multi-line secret, a line a condition made, or
        // anything else: hidden whole.
        assert_eq!(show(t, "smtp = mail"), "***");
        assert_eq!(show(t, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "***");
        assert_eq!(show(t, "password"), "***");
        assert_eq!(show(t, "port = 25 and a secret"), "***");
    }

    fn diff(old: &str, new: &str, masks: &Masks) -> String {
        let mut out = Vec::new();
        let changed = file(
            &mut out,
            &Sides {
                name: "/etc/app.conf",
                old: Some(old.as_bytes()),
                unread: None,
                old_mode: Some(0o644),
                new: new.as_bytes(),
                new_mode: 0o644,
                masks,
            },
        );
        assert_eq!(changed, old != new);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn unified_hunks_as_diff_u_writes_them() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 2\n", "line two\n")
            .replace("line 15\n", "")
            .replace("line 20\n", "line 20");
        assert_eq!(
            diff(&old, &new, &Masks::default()),
            "--- /etc/app.conf\n+++ /etc/app.conf\n\
             @@ -1,5 +1,5 @@\n line 1\n-line 2\n+line two\n line 3\n line 4\n line 5\n\
             @@ -12,9 +12,8 @@\n line 12\n line 13\n line 14\n-line 15\n line 16\n line 17\n \
             line 18\n line 19\n-line 20\n+line 20\n\\ No newline at end of file\n"
        );
        assert_eq!(diff("a\n", "a\n", &Masks::default()), "");
    }

    #[test]
    fn secrets_are_masked_on_both_sides() {
        let template = "token = {{ secrets.token }}\nworkers = {{ W }}\n";
        let new = "token = NEWSECRET\nworkers = 2\n";
        let masks = Masks {
            secret: std::iter::once(8..17).collect(),
            shapes: Some(shapes(template)),
        };
        let text = diff("token = OLDSECRET\nworkers = 1\n", new, &masks);
        assert_eq!(
            text,
            "--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1,2 +1,2 @@\n\
             -token = ***\n-workers = ***\n+token = ***\n+workers = 2\n"
        );
        assert!(!text.contains("SECRET"));
        // A context line holding a secret is masked too.
        let text = diff("token = NEWSECRET\nworkers = 1\n", new, &masks);
        assert!(text.contains(" token = ***\n"), "{text}");
    }
}
