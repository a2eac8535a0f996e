//! Fuzz target over the template surface and the formatters.
//!
//! Input: `VALUE \0 TEMPLATE` (no `\0`: all template). VALUE becomes the
//! variable `V` (any bytes: not UTF-8 is allowed). Asserts, for any input:
//! - rendering never panics;
//! - a template without `{{` renders to itself, byte for byte;
//! - the same bytes read as a program of text pieces and tags with known
//!   outputs (see `structured`) render to exactly the concatenation: text
//!   with `\`, `{` and `}` next to tags (loops, branches, values that look
//!   like syntax) comes out byte for byte.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use envinit::container::Facts;
use envinit::render::{Values, render_template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (value, template) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let values = Values::new(
        vec![
            (OsString::from("V"), OsString::from_vec(value.to_vec())),
            (OsString::from("N"), OsString::from("42")),
            (OsString::from("L"), OsString::from("a, b,,c")),
            (OsString::from("E"), OsString::from("")),
        ],
        "/nonexistent/secrets".into(),
    )
    .with_container(|| Facts {
        memory_bytes: 1 << 30,
        memory_limited: true,
        cpus: 4,
    });

    let result = render_template("fuzz", template, &values);
    if let Ok(text) = std::str::from_utf8(template) {
        if !text.contains("{{") {
            assert_eq!(
                result.as_deref(),
                Ok(text),
                "text without {{{{ must pass through"
            );
        }
    }

    structured(template, value, &values);
});

/// Reads `program` as text pieces and tags whose output is known, renders
/// the template they make, and compares with the expected bytes.
fn structured(program: &[u8], value: &[u8], values: &Values) {
    const TEXT: [&str; 9] = ["{", "}", "\\", "\n", "x", "$", " ", "ü", "#"];
    let v = std::str::from_utf8(value).ok();
    let mut src = String::new();
    let mut want = String::new();
    for &b in program {
        if b < 0xc0 {
            let mut piece = TEXT[b as usize % TEXT.len()];
            if piece == "{" && src.ends_with('{') {
                piece = "x";
            }
            src.push_str(piece);
            want.push_str(piece);
            continue;
        }
        let (tag, out): (&str, &str) = match (b - 0xc0) % 9 {
            // An empty value fails `{{ V }}` on purpose; `default ""`
            // accepts it.
            0 => match v {
                Some("") => ("{{ V | default \"\" }}", ""),
                Some(v) => ("{{ V }}", v),
                None => continue,
            },
            1 => ("{{ \"{{\" }}", "{{"),
            2 => ("{{ N | div 5 | mul 3 | sub 30 }}", "-6"),
            3 => ("{{ for i in L }}{{ i | upper }}\\{{ endfor }}", "A\\B\\C\\"),
            4 => ("{{ if N }}\\{{ else }}no{{ endif }}", "\\"),
            5 => ("{{ container.cpus | percent 50 }}", "2"),
            6 => ("{{ E | default \"}}\" }}", "}}"),
            7 => ("{{ \"\\\\\" | shell }}", "'\\'"),
            _ => ("{{ if not E }}{ e }{{ endif }}", "{ e }"),
        };
        // A tag right after "{" would be "{{{": still the same meaning.
        src.push_str(tag);
        want.push_str(out);
    }
    match render_template("fuzz", src.as_bytes(), values) {
        Ok(got) => assert_eq!(got, want, "template {src:?}"),
        Err(problems) => panic!("template {src:?} failed: {problems:?}"),
    }
}
