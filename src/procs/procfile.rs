//! The Procfile format (Heroku, foreman, honcho, overmind): one
//! `NAME: COMMAND` a line, `#` comments, blank lines. Pure functions over
//! text; every error is `(line, what and how to fix)`.
//!
//! A command is split into words as a shell splits a simple command, with
//! no expansion: whitespace separates words; `'...'` keeps everything
//! literally; `"..."` keeps everything but `\"`, `\\`, `` \` `` and `\$`,
//! which lose their backslash; outside quotes a backslash keeps the next
//! character, and a backslash at the end of a line continues the command
//! on the next one; a word starting with `#` begins a comment. Leading
//! `NAME=VALUE` words set variables for the process, as in a shell. What a
//! shell would expand or treat as syntax (`$`, a backquote, `|`, `&`, `;`,
//! `<`, `>`, `(`, `)` outside single quotes or a backslash) is an error
//! that says to write `sh -c '...'`: it would otherwise reach the program
//! as a literal word, which is never what a Procfile's author meant.

use std::ffi::CString;

/// One process of a Procfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The line it starts on (1-based).
    pub line: usize,
    /// Variables set by leading `NAME=VALUE` words, as `NAME=VALUE`.
    pub env: Vec<Vec<u8>>,
    /// The command and its arguments.
    pub argv: Vec<CString>,
}

/// The most processes one Procfile may name.
pub const MAX_ENTRIES: usize = 256;

/// May `b` be part of a process name?
pub fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.".contains(&b)
}

/// Reads a Procfile's text: its processes in file order, or the first
/// problem as `(line, what and how to fix)`.
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, &'static str)> {
    let bytes = text.as_bytes();
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = 0;
    let mut line = 1;
    while at < bytes.len() {
        let start = line;
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        let first = &text[at..end];
        let trimmed = first.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            at = end + 1;
            line += 1;
            continue;
        }
        let fail = |what| Err((start, what));
        let Some((name, _)) = first.split_once(':') else {
            return fail("not NAME: COMMAND (e.g. web: nginx); # starts a comment");
        };
        if name.is_empty() || !name.bytes().all(name_byte) {
            return fail("a name is letters, digits, - _ and . from the line's start to the colon");
        }
        if entries.iter().any(|e| e.name == name) {
            return fail("name used on an earlier line: rename one");
        }
        if entries.len() == MAX_ENTRIES {
            return fail("more than 256 processes");
        }
        let from = at + name.len() + 1;
        let mut words = split(bytes, &mut at, &mut line, from)?;
        let assignments = words.iter().take_while(|w| is_assignment(w)).count();
        let env: Vec<Vec<u8>> = words.drain(..assignments).collect();
        if words.is_empty() {
            return fail("no command after the colon");
        }
        entries.push(Entry {
            name: name.to_string(),
            line: start,
            env,
            // No NUL byte: split refuses them.
            argv: words
                .into_iter()
                .filter_map(|w| CString::new(w).ok())
                .collect(),
        });
    }
    Ok(entries)
}

/// `NAME=VALUE` with a variable's name before the `=`.
fn is_assignment(word: &[u8]) -> bool {
    match word.iter().position(|&b| b == b'=') {
        Some(eq) => {
            eq > 0
                && !word[0].is_ascii_digit()
                && word[..eq]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// Splits the command starting at `from` (up to the end of its line, or
/// of its last continued line) into words; `at` and `line` move past it.
fn split(
    bytes: &[u8],
    at: &mut usize,
    line: &mut usize,
    from: usize,
) -> Result<Vec<Vec<u8>>, (usize, &'static str)> {
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut quote = 0u8;
    let mut i = from;
    let fail = |line: usize, what| Err((line, what));
    loop {
        let Some(&c) = bytes.get(i) else {
            if quote != 0 {
                return fail(*line, "unterminated quote: close it on its line");
            }
            break;
        };
        i += 1;
        match (quote, c) {
            (_, 0) => return fail(*line, "a NUL byte: remove it"),
            (b'\'' | b'"', b'\n') => {
                return fail(*line, "unterminated quote: close it on its line");
            }
            (b'\'', b'\'') | (b'"', b'"') => quote = 0,
            (b'\'', _) => word.get_or_insert_default().push(c),
            (_, b'\\') => match bytes.get(i) {
                Some(b'\n') => {
                    i += 1;
                    *line += 1;
                }
                Some(&next) => {
                    i += 1;
                    let w = word.get_or_insert_default();
                    // In double quotes, a backslash stays unless it escapes
                    // one of the characters special there.
                    if quote != 0 && !b"\"\\$`".contains(&next) {
                        w.push(b'\\');
                    }
                    w.push(next);
                }
                None => word.get_or_insert_default().push(c),
            },
            (_, b'$' | b'`') => {
                return fail(
                    *line,
                    "$ and ` are not expanded (no shell): use sh -c '...' or '...' quotes",
                );
            }
            (0, b'\'' | b'"') => {
                word.get_or_insert_default();
                quote = c;
            }
            (0, b'\n') => break,
            (0, b' ' | b'\t' | b'\r') => words.extend(word.take()),
            (0, b'#') if word.is_none() => {
                // A comment, to the end of the line.
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            (0, b'|' | b'&' | b';' | b'<' | b'>' | b'(' | b')') => {
                return fail(
                    *line,
                    "| & ; < > ( ) are shell syntax (no shell): use sh -c '...' or quotes",
                );
            }
            _ => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    *at = i;
    *line += 1;
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<String> {
        let entries = parse(&format!("p: {text}\n")).unwrap();
        assert_eq!(entries.len(), 1, "{text}");
        strings(&entries[0].argv)
    }

    fn strings(words: &[CString]) -> Vec<String> {
        words
            .iter()
            .map(|w| w.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn lines_comments_and_order() {
        let text = "# the site\n\nphp-fpm: php-fpm8.2 -F\n  # indented comment\nweb: nginx -g 'daemon off;'\ncron:cron -f";
        let entries = parse(text).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["php-fpm", "web", "cron"]);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[1].line, 5);
        assert_eq!(strings(&entries[1].argv), ["nginx", "-g", "daemon off;"]);
        assert_eq!(strings(&entries[2].argv), ["cron", "-f"]);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("# nothing\n\n").unwrap(), vec![]);
    }

    #[test]
    fn words_split_as_a_shell_splits_a_simple_command() {
        assert_eq!(argv("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(
            argv(r#"sh -c 'echo "$HOME" | cat'"#),
            ["sh", "-c", r#"echo "$HOME" | cat"#]
        );
        assert_eq!(
            argv(r#"echo "a \"b\" \\ \$x \n""#),
            ["echo", r#"a "b" \ $x \n"#]
        );
        assert_eq!(argv(r"echo a\ b \| \$"), ["echo", "a b", "|", "$"]);
        assert_eq!(argv("echo '' \"\" x''y"), ["echo", "", "", "xy"]);
        assert_eq!(argv("echo a#b # a comment | ;"), ["echo", "a#b"]);
        assert_eq!(argv("echo {a,b} * ~ !x"), ["echo", "{a,b}", "*", "~", "!x"]);
        assert_eq!(argv("echo x\r"), ["echo", "x"]);
    }

    #[test]
    fn continued_lines_count() {
        let entries = parse("a: echo one \\\n  two\nb: echo three\n").unwrap();
        assert_eq!(strings(&entries[0].argv), ["echo", "one", "two"]);
        assert_eq!(entries[1].line, 3);
        let e = parse("a: echo \\\n\\\n $x\n").unwrap_err();
        assert_eq!(e.0, 3, "{e:?}");
    }

    #[test]
    fn leading_assignments_are_the_process_environment() {
        let e = &parse("w: A=1 B_2= C='x y' worker --n=3 X=4\n").unwrap()[0];
        assert_eq!(e.env, [&b"A=1"[..], b"B_2=", b"C=x y"]);
        assert_eq!(strings(&e.argv), ["worker", "--n=3", "X=4"]);
        assert_eq!(strings(&parse("w: 1A=2 x").unwrap()[0].argv), ["1A=2", "x"]);
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        for (text, line, says) in [
            ("a: x\nb x\n", 2, "not NAME: COMMAND"),
            ("a: x\nweb server: x\n", 2, "letters, digits"),
            (" web: x\n", 1, "from the line's start"),
            (": x\n", 1, "a name is"),
            ("a: x\n\na: y\n", 3, "used on an earlier line"),
            ("a:\n", 1, "no command after the colon"),
            ("a: A=1\n", 1, "no command"),
            ("a: x\nb: echo 'open\nc: y\n", 2, "unterminated quote"),
            ("a: echo \"open", 1, "unterminated quote"),
            (
                "a: echo $HOME\n",
                1,
                "$ and ` are not expanded (no shell): use sh -c",
            ),
            ("a: echo \"$HOME\"\n", 1, "use sh -c '...'"),
            ("a: echo `date`\n", 1, "not expanded"),
            ("a: x | y\n", 1, "are shell syntax"),
            ("a: x && y\n", 1, "shell syntax"),
            ("a: x >log\n", 1, "shell syntax"),
            ("a: x;\n", 1, "shell syntax"),
            ("a: x\0\n", 1, "NUL"),
        ] {
            let (at, message) = parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}: {message}");
            assert!(message.contains(says), "{text:?}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
        let many: String = (0..=MAX_ENTRIES).map(|i| format!("p{i}: x\n")).collect();
        assert_eq!(parse(&many).unwrap_err().0, MAX_ENTRIES + 1);
    }
}
