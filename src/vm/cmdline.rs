//! The kernel command line (/proc/cmdline), read as the kernel reads it,
//! and what it decides about init's environment. Pure functions over
//! strings.
//!
//! # What it owns
//!
//! - [`Cmdline::parse`]: the words before `--`, `KEY=VALUE` or bare, with
//!   the kernel's double quotes (`KEY="a b"`) removed.
//! - [`change`]: the rule for the environment the kernel (or a first
//!   stage) handed envinit. Only `KEY=VALUE` words present on the command
//!   line are the user's: a variable a first stage exported (busybox's
//!   `PATH=/bin`) is dropped, so it neither reaches the app nor overrides
//!   the image's `Env`; parameters meant for the kernel ([`KERNEL_ONLY`],
//!   such as `ip=` on a kernel without CONFIG_IP_PNP) never reach the app.
//!   (A word given twice counts once, with its last value, as the kernel
//!   itself keeps it: lists are comma-separated in one word.)

/// Parameters meant for the kernel or a boot loader that a kernel which
/// does not know them hands to init as variables: never the app's. (`ip`
/// and `nfsaddrs` are read by VM mode's network setup from the command
/// line itself.)
pub const KERNEL_ONLY: &[&str] = &["ip", "nfsaddrs", "BOOT_IMAGE"];

/// The kernel command line's text; its words are read on demand.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cmdline(pub String);

impl Cmdline {
    /// The words before `--` as the kernel splits them: at spaces, except
    /// inside double quotes (which stay in the word).
    fn words(&self) -> impl Iterator<Item = &str> {
        let mut quoted = false;
        self.0
            .split(move |c: char| {
                quoted ^= c == '"';
                c.is_ascii_whitespace() && !quoted
            })
            .filter(|word| !word.is_empty())
            .take_while(|word| *word != "--")
    }

    /// The value of the last `key=VALUE` word, as the kernel keeps it (its
    /// double quotes removed: `key="a b"` and `"key=a b"` are `a b`).
    #[inline(never)]
    pub fn value(&self, key: &str) -> Option<&str> {
        self.words()
            .filter_map(|word| word.trim_matches('"').split_once('='))
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v.trim_matches('"'))
    }
}

/// What the rule of this module does with the variable `key`=`value` of
/// init's environment: `None` keeps it, `Some(None)` removes it,
/// `Some(Some(word))` sets it to the command line's value (a first stage
/// changed it).
pub fn change<'a>(cmdline: &'a Cmdline, key: &str, value: &str) -> Option<Option<&'a str>> {
    if KERNEL_ONLY.contains(&key) {
        return Some(None);
    }
    match cmdline.value(key) {
        Some(word) if word == value => None,
        Some(word) => Some(Some(word)),
        // The two the kernel sets itself.
        None if (key, value) == ("HOME", "/") || (key, value) == ("TERM", "linux") => None,
        None => Some(None),
    }
}

#[cfg(test)]
impl Cmdline {
    fn from(text: &str) -> Cmdline {
        Cmdline(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_the_kernel_splits_them() {
        let c = Cmdline::from(
            "console=ttyS0 root=/dev/vda  rw A=\"x y\" \"B=1 2\" ip=a:b::: \
             A=last -- /app --x=1\n",
        );
        assert_eq!(c.value("console"), Some("ttyS0"));
        assert_eq!(c.value("A"), Some("last"));
        assert_eq!(c.value("B"), Some("1 2"));
        assert_eq!(c.value("ip"), Some("a:b:::"));
        // A bare word has no value.
        assert_eq!(c.value("rw"), None);
        // After `--`: the app's, not the kernel's.
        assert_eq!(c.value("--x"), None);
        assert_eq!(Cmdline::from("").value("x"), None);
        assert_eq!(Cmdline::from("E= F").value("E"), Some(""));
    }

    #[test]
    fn a_first_stages_variables_are_dropped_and_kernel_words_kept() {
        let c = Cmdline::from("GREETING=hi ENVINIT_GRACE=3s ip=10.0.2.15::10.0.2.2 quiet X=1 X=2");
        for (key, value, wanted) in [
            ("HOME", "/", None),
            ("TERM", "linux", None),
            ("GREETING", "hi", None),
            ("ENVINIT_GRACE", "3s", None),
            ("X", "2", None),
            // A first stage's.
            ("PATH", "/bin", Some(None)),
            ("STAGE_ONLY", "x", Some(None)),
            ("HOME", "/root", Some(None)),
            // The kernel's own parameter.
            ("ip", "10.0.2.15::10.0.2.2", Some(None)),
            // A stage that changed a kernel word's value: the kernel's wins.
            ("GREETING", "stage", Some(Some("hi"))),
        ] {
            assert_eq!(change(&c, key, value), wanted, "{key}={value}");
        }
    }
}
