//! `--ini PREFIX:DEST`: turns every variable `PREFIX<key>=<value>` into a
//! line `<key> = <value>`, and `PREFIX<section>__<key>` into a line under
//! `[<section>]`. Owns the key rules and the quoting policy, chosen so that
//! PHP's ini parser and MySQL/MariaDB option files read the same value.
//!
//! Promises:
//! - Output is sorted and stable: a header comment, the keys outside any
//!   section, then each section (sorted by name) with its keys (sorted).
//! - Keys and section names keep their case, dots and dashes: letters,
//!   digits, `_`, `.`, `-`.
//! - A value is written bare when it is empty or made only of letters,
//!   digits, interior spaces and `_ . / : , @ + - % * & | ~ ^ ! ( )`, as one
//!   would write it by hand (so PHP still evaluates `E_ALL & ~E_DEPRECATED`).
//!   Any other value is double-quoted with `\` and `"` escaped by a
//!   backslash, which PHP and MySQL both undo. Values with line breaks or
//!   other control characters (tab is allowed), or with `${` (PHP would
//!   expand it inside quotes, MySQL would not), are errors.
//! - Errors name the variable, never its value.

use std::collections::BTreeMap;

use super::IniTarget;
use super::values::{MAX_VALUE, Values};

fn is_key(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_bare(value: &str) -> bool {
    value.is_empty()
        || (!value.starts_with(' ')
            && !value.ends_with(' ')
            && value.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        ' ' | '_'
                            | '.'
                            | '/'
                            | ':'
                            | ','
                            | '@'
                            | '+'
                            | '-'
                            | '%'
                            | '*'
                            | '&'
                            | '|'
                            | '~'
                            | '^'
                            | '!'
                            | '('
                            | ')'
                    )
            }))
}

/// The value as written after `key = `.
fn quote(value: &str) -> String {
    if is_bare(value) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Renders the ini file for `target`, or every problem found.
pub(crate) fn render(target: &IniTarget, values: &Values) -> Result<Vec<u8>, Vec<String>> {
    let prefix = target.prefix.as_str();
    let label = format!("--ini {}:{}", prefix, target.dest.display());
    let mut problems = Vec::new();
    if prefix.is_empty() {
        return Err(vec![format!(
            "{label}: the prefix is empty: give one such as PHP_INI_"
        )]);
    }
    let mut sections: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for (name, value) in values.with_prefix(prefix) {
        let Some(name) = name.to_str() else {
            problems.push(format!(
                "{label}: the variable {name:?} is not valid UTF-8: rename it"
            ));
            continue;
        };
        let rest = &name[prefix.len()..];
        let (section, key) = rest.split_once("__").unwrap_or(("", rest));
        if !is_key(key) || (rest.contains("__") && !is_key(section)) {
            problems.push(format!(
                "{label}: {name} does not name an ini key: write {prefix}key or {prefix}section__key, with letters, digits, _, . and - only"
            ));
            continue;
        }
        let Some(value) = value.to_str() else {
            problems.push(format!("{label}: {name} is not valid UTF-8: fix its value"));
            continue;
        };
        if value.len() > MAX_VALUE {
            problems.push(format!("{label}: {name} is larger than 1 MiB"));
            continue;
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            problems.push(format!(
                "{label}: {name} contains a line break or control character: ini values are one line"
            ));
            continue;
        }
        if value.contains("${") {
            problems.push(format!(
                "{label}: {name} contains ${{, which PHP would expand: use a template for this value"
            ));
            continue;
        }
        sections
            .entry(section)
            .or_default()
            .insert(key, quote(value));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out = format!(
        "; Written by envinit from the variables {prefix}*: change those, not this file.\n"
    );
    for (section, keys) in &sections {
        if !section.is_empty() {
            out.push('\n');
            out.push('[');
            out.push_str(section);
            out.push_str("]\n");
        }
        for (key, value) in keys {
            out.push_str(key);
            out.push_str(" =");
            if !value.is_empty() {
                out.push(' ');
                out.push_str(value);
            }
            out.push('\n');
        }
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::path::PathBuf;

    fn target(prefix: &str) -> IniTarget {
        IniTarget {
            prefix: prefix.into(),
            dest: "/etc/x.ini".into(),
        }
    }

    fn values(env: &[(&str, &str)]) -> Values {
        Values::new(
            env.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            PathBuf::from("/nonexistent"),
        )
    }

    #[test]
    fn sorted_sections_and_quoting() {
        let v = values(&[
            ("P_zeta", "1"),
            ("P_date.timezone", "Europe/Paris"),
            ("P_mysqld__innodb_buffer_pool_size", "1G"),
            ("P_client__password", "p\"a\\s s;#"),
            ("P_mysqld__skip-name-resolve", ""),
            ("P_error_reporting", "E_ALL & ~E_DEPRECATED"),
            ("P_spaced", " x"),
            ("OTHER", "no"),
        ]);
        let out = String::from_utf8(render(&target("P_"), &v).unwrap()).unwrap();
        assert_eq!(
            out,
            "; Written by envinit from the variables P_*: change those, not this file.\n\
             date.timezone = Europe/Paris\n\
             error_reporting = E_ALL & ~E_DEPRECATED\n\
             spaced = \" x\"\n\
             zeta = 1\n\
             \n[client]\n\
             password = \"p\\\"a\\\\s s;#\"\n\
             \n[mysqld]\n\
             innodb_buffer_pool_size = 1G\n\
             skip-name-resolve =\n"
        );
    }

    #[test]
    fn no_variables_gives_just_the_header() {
        let out = render(&target("NONE_"), &values(&[("A", "1")])).unwrap();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    }

    #[test]
    fn problems_name_the_variable_not_the_value() {
        let v = Values::new(
            vec![
                (OsString::from("P_bad key"), OsString::from("v")),
                (OsString::from("P_"), OsString::from("v")),
                (OsString::from("P___k"), OsString::from("v")),
                (OsString::from("P_nl"), OsString::from("sec\nret")),
                (OsString::from("P_dollar"), OsString::from("a${b}")),
                (OsString::from("P_bin"), OsString::from_vec(vec![0xff])),
            ],
            PathBuf::from("/x"),
        );
        let problems = render(&target("P_"), &v).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:?}");
        for p in &problems {
            assert!(!p.contains("sec\nret") && !p.contains("a${b}"), "{p}");
            assert!(p.starts_with("--ini P_:/etc/x.ini: "), "{p}");
        }
        assert!(render(&target(""), &v).is_err());
    }
}
