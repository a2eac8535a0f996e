//! Formatters: what may follow `|` in a template expression, how each is
//! parsed (name and argument, checked before anything is evaluated) and
//! what it does to a value.
//!
//! Promises: no formatter panics on any input. Arithmetic is on `i64`
//! (signed 64-bit), checked: an overflow is an error, never a wrap-around;
//! division truncates toward zero; negative results are printed with a `-`.

/// The integer arithmetic formatters, each taking one whole-number argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    /// `percent N`: `value * N / 100`.
    Percent,
    /// `div N`: `value / N` (N is never 0: rejected when parsed).
    Div,
    /// `mul N`: `value * N`.
    Mul,
    /// `add N`: `value + N`.
    Add,
    /// `sub N`: `value - N`.
    Sub,
    /// `min N`: the smaller of `value` and `N`.
    Min,
    /// `max N`: the larger of `value` and `N`.
    Max,
}

/// One formatter with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `upper`: Unicode upper case.
    Upper,
    /// `lower`: Unicode lower case.
    Lower,
    /// `json`: a quoted JSON string.
    Json,
    /// `shell`: a single-quoted POSIX shell word.
    Shell,
    /// `default "x"`: `x` when the value is unset or empty.
    Default(String),
    /// Integer arithmetic with its argument.
    Arith(Arith, i64),
}

/// The formatter names, as listed in error messages and the docs.
pub(crate) const NAMES: &str =
    "upper, lower, json, shell, default, percent, div, mul, add, sub, min or max";

/// What a formatter's argument looked like in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// No argument follows.
    None,
    /// A quoted string.
    Str(String),
    /// A bare word (a number, or a mistake).
    Word(String),
}

impl Arith {
    fn from_name(name: &str) -> Option<Arith> {
        Some(match name {
            "percent" => Arith::Percent,
            "div" => Arith::Div,
            "mul" => Arith::Mul,
            "add" => Arith::Add,
            "sub" => Arith::Sub,
            "min" => Arith::Min,
            "max" => Arith::Max,
            _ => return None,
        })
    }

    /// The formatter's name as written.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Arith::Percent => "percent",
            Arith::Div => "div",
            Arith::Mul => "mul",
            Arith::Add => "add",
            Arith::Sub => "sub",
            Arith::Min => "min",
            Arith::Max => "max",
        }
    }

    /// Applies the operation, `None` on overflow.
    pub(crate) fn apply(self, value: i64, n: i64) -> Option<i64> {
        match self {
            Arith::Percent => value.checked_mul(n).map(|p| p / 100),
            Arith::Div => value.checked_div(n),
            Arith::Mul => value.checked_mul(n),
            Arith::Add => value.checked_add(n),
            Arith::Sub => value.checked_sub(n),
            Arith::Min => Some(value.min(n)),
            Arith::Max => Some(value.max(n)),
        }
    }
}

/// Parses one formatter: its name and what followed it. The error is one
/// message saying how to fix it.
pub(crate) fn parse(name: &str, arg: Arg) -> Result<Op, String> {
    let none = |op: Op| match &arg {
        Arg::None => Ok(op),
        _ => Err(format!("{name} takes no argument: remove what follows it")),
    };
    match name {
        "upper" => none(Op::Upper),
        "lower" => none(Op::Lower),
        "json" => none(Op::Json),
        "shell" => none(Op::Shell),
        "default" => match arg {
            Arg::Str(s) => Ok(Op::Default(s)),
            Arg::Word(w) if w.parse::<i64>().is_ok() => Ok(Op::Default(w)),
            _ => Err("default needs a value in double quotes, e.g. default \"128M\"".into()),
        },
        _ => match Arith::from_name(name) {
            Some(op) => {
                let example = format!("e.g. {name} {}", if op == Arith::Percent { 75 } else { 2 });
                let n = match arg {
                    Arg::Word(w) => w.parse::<i64>().map_err(|_| {
                        format!("{name} needs a whole number between -2^63 and 2^63-1, {example}")
                    })?,
                    Arg::Str(_) => {
                        return Err(format!(
                            "{name} needs a whole number without quotes, {example}"
                        ));
                    }
                    Arg::None => return Err(format!("{name} needs a whole number, {example}")),
                };
                if op == Arith::Div && n == 0 {
                    return Err("div 0 divides by zero: divide by another number".into());
                }
                Ok(Op::Arith(op, n))
            }
            None => Err(format!("unknown formatter {name:?}: use {NAMES}")),
        },
    }
}

/// `json`: the value as a quoted JSON string (also a valid YAML
/// double-quoted scalar).
pub(crate) fn json(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    crate::json::push_json_string(&mut out, value);
    out
}

/// `shell`: the value as one single-quoted POSIX shell word.
pub(crate) fn shell(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// True for the values `if` treats as false: empty, `0`, `false`, `no`,
/// `off` (any case, surrounding whitespace ignored).
pub(crate) fn is_false(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v == "0"
        || ["false", "no", "off"]
            .iter()
            .any(|f| v.eq_ignore_ascii_case(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_formatter() {
        assert_eq!(parse("upper", Arg::None), Ok(Op::Upper));
        assert_eq!(parse("lower", Arg::None), Ok(Op::Lower));
        assert_eq!(parse("json", Arg::None), Ok(Op::Json));
        assert_eq!(parse("shell", Arg::None), Ok(Op::Shell));
        assert_eq!(
            parse("default", Arg::Str("x".into())),
            Ok(Op::Default("x".into()))
        );
        assert_eq!(
            parse("default", Arg::Word("5".into())),
            Ok(Op::Default("5".into()))
        );
        assert_eq!(
            parse("percent", Arg::Word("75".into())),
            Ok(Op::Arith(Arith::Percent, 75))
        );
        assert_eq!(
            parse("sub", Arg::Word("-3".into())),
            Ok(Op::Arith(Arith::Sub, -3))
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        for (name, arg, want) in [
            ("upper", Arg::Word("x".into()), "takes no argument"),
            ("default", Arg::None, "needs a value"),
            ("default", Arg::Word("abc".into()), "needs a value"),
            ("div", Arg::None, "needs a whole number"),
            ("div", Arg::Word("0".into()), "divides by zero"),
            ("mul", Arg::Str("2".into()), "without quotes"),
            ("add", Arg::Word("1.5".into()), "whole number"),
            (
                "max",
                Arg::Word("99999999999999999999".into()),
                "whole number",
            ),
            ("uper", Arg::None, "unknown formatter \"uper\""),
        ] {
            let e = parse(name, arg).unwrap_err();
            assert!(e.contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Arith::Percent.apply(1024, 75), Some(768));
        assert_eq!(Arith::Percent.apply(-7, 50), Some(-3));
        assert_eq!(Arith::Div.apply(7, 2), Some(3));
        assert_eq!(Arith::Div.apply(-7, 2), Some(-3));
        assert_eq!(Arith::Div.apply(i64::MIN, -1), None);
        assert_eq!(Arith::Mul.apply(i64::MAX, 2), None);
        assert_eq!(Arith::Add.apply(i64::MAX, 1), None);
        assert_eq!(Arith::Sub.apply(i64::MIN, 1), None);
        assert_eq!(Arith::Sub.apply(1, 5), Some(-4));
        assert_eq!(Arith::Min.apply(3, 2), Some(2));
        assert_eq!(Arith::Max.apply(3, 8), Some(8));
        assert_eq!(Arith::Percent.apply(i64::MAX, 2), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(json("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        assert_eq!(json("ü"), "\"ü\"");
        assert_eq!(shell("it's"), r"'it'\''s'");
        assert_eq!(shell(""), "''");
        for s in ["plain", "a\"b", "\\", "\u{2028}", "\t\r\n"] {
            let back: String = serde_json::from_str(&json(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn falsy_values() {
        for f in ["", "0", "false", "FALSE", "No", "off", " off "] {
            assert!(is_false(f), "{f:?}");
        }
        for t in ["1", "yes", "true", "on", "00", "x", "-1"] {
            assert!(!is_false(t), "{t:?}");
        }
    }
}
