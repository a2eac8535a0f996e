//! JSON: string escaping, shared by envinit's JSON log lines (`logging`)
//! and the templates' `json` formatter (`render`). A leaf.

/// Appends `text` as a JSON string literal: quotes, backslashes and control
/// characters escaped, and the two JavaScript line terminators too. Shared
/// by the JSON log lines and the templates' `json` formatter.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = c as u32;
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(char::from(HEX[((n >> shift) & 0xf) as usize]));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é\u{2028}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\\u2028\"");
    }
}
