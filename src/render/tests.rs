//! Unit tests of the template language and of a whole render run.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use super::*;
use super::{IniTarget, PathPair};
use crate::container::Facts;

fn facts() -> Facts {
    Facts {
        memory_bytes: 2 << 30,
        memory_limited: true,
        cpus: 3,
    }
}

fn values_in(env: &[(&str, &str)], secrets: PathBuf) -> Values {
    Values::new(
        env.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        secrets,
    )
    .with_container(facts)
}

fn values(env: &[(&str, &str)]) -> Values {
    values_in(env, PathBuf::from("/nonexistent/secrets"))
}

fn render(src: &str, env: &[(&str, &str)]) -> Result<String, Vec<String>> {
    render_template("t", src.as_bytes(), &values(env))
}

fn ok(src: &str, env: &[(&str, &str)]) -> String {
    match render(src, env) {
        Ok(out) => out,
        Err(problems) => panic!("{src:?}: {problems:?}"),
    }
}

fn err(src: &str, env: &[(&str, &str)]) -> Vec<String> {
    match render(src, env) {
        Ok(out) => panic!("{src:?} rendered {out:?}"),
        Err(problems) => problems,
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("envinit-render-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn variables_and_defaults() {
    let env = [("A", "1G"), ("EMPTY", "")];
    assert_eq!(ok("memory_limit = {{ A }}\n", &env), "memory_limit = 1G\n");
    assert_eq!(ok("{{A}}|{{  A  }}", &env), "1G|1G");
    assert_eq!(ok("{{ B | default \"256M\" }}", &env), "256M");
    assert_eq!(ok("{{ EMPTY | default \"x\" }}", &env), "x");
    assert_eq!(ok("[{{ EMPTY | default \"\" }}]", &env), "[]");
    assert_eq!(ok("{{ A | default \"x\" }}", &env), "1G");
    assert_eq!(ok("{{ B | default 5 }}", &env), "5");
}

/// One rule: `{{ X }}` needs a non-empty value; an empty one is reported
/// like an unset one, at its position, saying "empty"; `default ""` accepts
/// it on purpose. The same for secrets and `X_FILE` files.
#[test]
fn an_empty_value_fails_the_strict_check_like_an_unset_one() {
    let env = [("EMPTY", "")];
    let problems = err("server_name {{ EMPTY }};\n", &env);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("t:1:16: EMPTY is set but empty"),
        "{problems:?}"
    );
    assert!(problems[0].contains("default \"\""), "{problems:?}");
    assert!(err("{{ EMPTY | upper }}", &env)[0].contains("empty"));
    assert!(err("{{ for x in EMPTY }}{{ x }}{{ endfor }}", &env)[0].contains("empty"));
    assert_eq!(ok("{{ if EMPTY }}y{{ else }}n{{ endif }}", &env), "n");

    let dir = tempdir("empty");
    fs::write(dir.join("pw"), "\n").unwrap();
    let file = dir.join("pw").display().to_string();
    let values = values_in(&[("PW_FILE", &file)], dir.clone());
    let problems = render_template("t", b"{{ PW }}{{ secrets.pw }}", &values).unwrap_err();
    assert!(
        problems[0].contains("PW_FILE names an empty file"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("secret pw in") && problems[1].contains("is empty"),
        "{problems:?}"
    );
    assert_eq!(
        render_template(
            "t",
            b"[{{ PW | default \"\" }}{{ secrets.pw | default \"\" }}]",
            &values
        )
        .unwrap(),
        "[]"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_double_braces_are_special() {
    let text = "server {\n  location / { return 200 '{\"a\":1}'; }\n}\n%d{HH:mm} ${HOME} \\{ \\ } {#x#} {x}\n";
    assert_eq!(ok(text, &[]), text);
    assert_eq!(ok("{{ \"{{\" }} not a tag }}", &[]), "{{ not a tag }}");
    assert_eq!(ok("{{ \"}}\" }}", &[]), "}}");
    assert_eq!(
        ok("{\"k\": {{{ A | json }}}}", &[("A", "v")]),
        "{\"k\": {\"v\"}}"
    );
    assert_eq!(ok("{{ \"a\\\"b\\\\c\" }}", &[]), "a\"b\\c");
    assert_eq!(ok("x\\{{ A }}\\", &[("A", "\\{")]), "x\\\\{\\");
    assert_eq!(ok("{{ A }}", &[("A", "{{ B }}")]), "{{ B }}");
    assert_eq!(
        ok("{\"port\": {{ P }}}", &[("P", "8080")]),
        "{\"port\": 8080}"
    );
    assert_eq!(ok("{{{ P }}}", &[("P", "v")]), "{v}");
    assert_eq!(ok("{{ \"{{\" }} name }}", &[]), "{{ name }}");
}

#[test]
fn conditions() {
    let t = "{{ if A }}yes{{ else }}no{{ endif }}";
    for falsy in ["", "0", "false", "No", "OFF"] {
        assert_eq!(ok(t, &[("A", falsy)]), "no", "{falsy:?}");
    }
    assert_eq!(ok(t, &[]), "no");
    for truthy in ["1", "yes", "anything"] {
        assert_eq!(ok(t, &[("A", truthy)]), "yes");
    }
    assert_eq!(ok("{{ if not A }}unset{{ endif }}", &[]), "unset");
    assert_eq!(ok("{{ if A }}only{{ endif }}.", &[]), ".");
    // Untaken branches may name unset variables.
    assert_eq!(
        ok("{{ if DB }}host={{ DB }}{{ else }}local{{ endif }}", &[]),
        "local"
    );
    assert_eq!(
        ok(
            "{{ if container.memory_limited }}-Xmx{{ container.memory_mib | percent 75 }}m{{ endif }}",
            &[]
        ),
        "-Xmx1536m"
    );
    assert_eq!(
        ok(
            "{{ if A }}{{ if B }}ab{{ else }}a{{ endif }}{{ endif }}",
            &[("A", "1")]
        ),
        "a"
    );
}

#[test]
fn loops() {
    let env = [("HOSTS", " a, b ,,c ,"), ("SUFFIX", "!")];
    assert_eq!(
        ok(
            "{{ for h in HOSTS }}server {{ h }}{{ SUFFIX }};\n{{ endfor }}",
            &env
        ),
        "server a!;\nserver b!;\nserver c!;\n"
    );
    assert_eq!(
        ok(
            "{{ for h in HOSTS }}{{ h | upper }}{{ if h }}.{{ endif }}{{ endfor }}",
            &env
        ),
        "A.B.C."
    );
    assert_eq!(
        ok("{{ for h in EMPTY | default \"\" }}x{{ endfor }}", &[]),
        ""
    );
    assert_eq!(
        ok(
            "{{ for x in L }}{{ for y in M }}{{ x }}{{ y }} {{ endfor }}{{ endfor }}",
            &[("L", "1,2"), ("M", "a,b")]
        ),
        "1a 1b 2a 2b "
    );
    // A loop variable shadows a variable of the same name inside the loop.
    assert_eq!(
        ok(
            "{{ for X in L }}{{ X }}{{ endfor }}{{ X }}",
            &[("L", "in"), ("X", "out")]
        ),
        "inout"
    );
    // The inner list can come from the outer item.
    assert_eq!(
        ok(
            "{{ for x in L }}[{{ for y in x }}{{ y }}{{ endfor }}]{{ endfor }}",
            &[("L", "a,b")]
        ),
        "[a][b]"
    );
}

#[test]
fn formatters_chain_left_to_right() {
    let env = [("N", "Hello 'World'"), ("M", "1024")];
    assert_eq!(ok("{{ N | upper }}", &env), "HELLO 'WORLD'");
    assert_eq!(ok("{{ N | lower | upper | lower }}", &env), "hello 'world'");
    assert_eq!(ok("{{ N | json }}", &env), "\"Hello 'World'\"");
    assert_eq!(ok("{{ N | shell }}", &env), "'Hello '\\''World'\\'''");
    assert_eq!(ok("{{ M | div 64 | max 2 }}", &env), "16");
    assert_eq!(ok("{{ M | div 4096 | max 2 }}", &env), "2");
    assert_eq!(
        ok(
            "{{ M | percent 75 | add 1 | sub 2 | mul 3 | min 100000 }}",
            &env
        ),
        "2301"
    );
    assert_eq!(ok("{{ M | sub 2000 }}", &env), "-976");
    assert_eq!(ok("{{ M | mul -1 | div 3 }}", &env), "-341");
    assert_eq!(ok("{{ X | default \"7\" | mul 6 }}", &[]), "42");
    assert_eq!(
        ok("{{ X | default \"a b\" | json | shell }}", &[]),
        "'\"a b\"'"
    );
    assert_eq!(
        ok(
            "{{ container.memory_bytes }} {{ container.memory_mib }} {{ container.cpus }} {{ container.memory_limited }}",
            &[]
        ),
        "2147483648 2048 3 true"
    );
    assert_eq!(ok("{{ \"ß\" | upper }}", &[]), "SS");
}

#[test]
fn arithmetic_errors() {
    let env = [
        ("N", "12M"),
        ("BIG", "9223372036854775807"),
        ("HUGE", "99999999999999999999"),
    ];
    let e = err("{{ N | div 2 }}", &env);
    assert_eq!(
        e,
        vec!["t:1:8: div needs a whole number, but N is not one: make it digits such as 4"]
    );
    let e = err("{{ BIG | add 1 }}", &env);
    assert!(e[0].starts_with("t:1:10: add 1 overflows"), "{e:?}");
    let e = err("{{ HUGE | max 1 }}", &env);
    assert!(
        e[0].contains("in the range of a signed 64-bit integer"),
        "{e:?}"
    );
    let e = err("{{ X | default \"z\" | mul 2 }}", &[]);
    assert!(e[0].contains("after the formatters before it"), "{e:?}");
    assert!(err("{{ BIG | mul 2 }}", &env)[0].contains("overflows"));
    assert!(err("{{ BIG | percent 200 }}", &env)[0].contains("overflows"));
    assert!(err("{{ \"-9223372036854775808\" | div -1 }}", &[])[0].contains("overflows"));
}

#[test]
fn unset_variables_are_errors_with_positions() {
    let e = err("a = {{ A }}\nb = {{ B | upper }}\n  c = {{ A }}", &[]);
    assert_eq!(
        e,
        vec![
            "t:1:8: A is not set: set it, or give a default: {{ A | default \"...\" }}",
            "t:2:8: B is not set: set it, or give a default first: {{ B | default \"...\" }}",
            "t:3:10: A is not set: set it, or give a default: {{ A | default \"...\" }}",
        ]
    );
    let e = err("{{ for x in L }}{{ x }}{{ endfor }}", &[]);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("t:1:13: L is not set"), "{e:?}");
    // One report per position, not per loop iteration.
    let e = err("{{ for x in L }}{{ U }}{{ endfor }}", &[("L", "a,b,c")]);
    assert_eq!(
        e,
        vec!["t:1:20: U is not set: set it, or give a default: {{ U | default \"...\" }}"]
    );
}

#[test]
fn syntax_and_evaluation_problems_are_reported_together() {
    let e = err("{{ A }}\n{{ B | nope }}\n{{ C }}", &[]);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("t:1:4: A is not set"));
    assert!(e[1].starts_with("t:2:8: unknown formatter \"nope\""));
    assert!(e[2].starts_with("t:3:4: C is not set"));
    // Unbalanced blocks stop evaluation but not the report of syntax.
    let e = err("{{ if A }}\n{{ X | nope }}", &[]);
    assert_eq!(e.len(), 2, "{e:?}");
}

/// A bad tag is one problem, whatever its block holds: the tinytemplate
/// assembler used to add "internal error" at 1:1 for a bad `for` tag.
#[test]
fn a_bad_block_tag_is_one_problem() {
    let env = [("L", "a,b"), ("U", "")];
    for (src, want) in [
        (
            "{{ for in L }}{{ U }}{{ endfor }}",
            "t:1:8: for needs a loop variable name",
        ),
        (
            "x\n{{ for i of L }}{{ i }}{{ endfor }}",
            "t:2:10: expected in",
        ),
        (
            "{{ if L L }}{{ U }}{{ else }}{{ U }}{{ endif }}",
            "t:1:9: if takes one name",
        ),
    ] {
        let e = err(src, &env);
        assert_eq!(e.len(), 1, "{src:?}: {e:?}");
        assert!(e[0].starts_with(want), "{src:?}: {e:?}");
    }
}

/// Issue 13: a string left open on its line no longer hides the file's
/// later problems; each is reported at its position.
#[test]
fn an_unclosed_string_does_not_hide_later_problems() {
    let e = err(
        "{{ \"abc }}\n{{ X | nope }}\n{{ if }}{{ endif }}\n{{ Y }}\n",
        &[],
    );
    assert_eq!(
        e,
        vec![
            "t:1:4: this string is never closed on its line: add \" at its end",
            "t:2:8: unknown formatter \"nope\": use upper, lower, json, shell, default, percent, div, mul, add, sub, min or max",
            "t:3:1: if needs a condition: {{ if NAME }}, {{ if secrets.NAME }} or {{ if container.memory_limited }}",
            "t:4:4: Y is not set: set it, or give a default: {{ Y | default \"...\" }}",
        ]
    );
    // Without }} on its line the tag ends with the line; with one, the tag
    // ends there and the rest of the line is parsed.
    let e = err(
        "a {{ \"oops\nb {{ X | nope }}\nc {{ Z | default \"x }} {{ W | nope }}\n",
        &[],
    );
    let positions: Vec<String> = e
        .iter()
        .map(|p| p.splitn(4, ':').take(3).collect::<Vec<_>>().join(":"))
        .collect();
    assert_eq!(
        positions,
        vec!["t:1:6", "t:2:10", "t:3:18", "t:3:31"],
        "{e:?}"
    );
    assert!(e[0].contains("never closed on its line"), "{e:?}");
    assert!(e[2].contains("never closed on its line"), "{e:?}");
    // An open string at the very end still ends the parse, with one line.
    assert_eq!(
        err("{{ A | nope }}{{ \"abc", &[]),
        vec![
            "t:1:8: unknown formatter \"nope\": use upper, lower, json, shell, default, percent, div, mul, add, sub, min or max",
            "t:1:18: this string is never closed: add \" at its end",
        ]
    );
}

#[test]
fn not_utf8_templates_are_refused_with_a_position() {
    let e = render_template("t", b"ok\nab\xffcd", &values(&[])).unwrap_err();
    assert_eq!(
        e,
        vec!["t:2:3: the template is not valid UTF-8 here: templates must be UTF-8 text"]
    );
}

#[test]
fn problems_are_capped_per_file() {
    let src = "{{ X }}".repeat(MAX_PROBLEMS_PER_FILE + 5);
    let e = err(&src, &[]);
    assert_eq!(e.len(), MAX_PROBLEMS_PER_FILE + 1);
    assert_eq!(e.last().unwrap(), "t: 5 more problems not shown");
}

#[test]
fn secrets_and_file_variables() {
    let dir = tempdir("secrets");
    fs::write(dir.join("db_password"), "hunter2\n").unwrap();
    fs::write(dir.join("api.key"), "k3y\r\n").unwrap();
    let pw_file = dir.join("db_password");
    let pw = pw_file.to_str().unwrap();
    let v = values_in(
        &[
            ("DB_PASSWORD_FILE", pw),
            ("BOTH", "visible-value"),
            ("BOTH_FILE", pw),
            ("GONE_FILE", "/nonexistent/x"),
        ],
        dir.clone(),
    );
    let r = |src: &str| render_template("t", src.as_bytes(), &v);
    assert_eq!(
        r("{{ secrets.db_password }}|{{ secrets.api.key }}").unwrap(),
        "hunter2|k3y"
    );
    assert_eq!(r("{{ DB_PASSWORD | json }}").unwrap(), "\"hunter2\"");
    assert_eq!(
        r("{{ if secrets.db_password }}y{{ endif }}{{ if secrets.nope }}n{{ endif }}").unwrap(),
        "y"
    );
    assert_eq!(r("{{ secrets.nope | default \"d\" }}").unwrap(), "d");
    let e = r("{{ secrets.nope }}\n{{ BOTH }}\n{{ GONE }}\n{{ secrets.db_password | div 2 }}")
        .unwrap_err();
    assert_eq!(e.len(), 4, "{e:?}");
    assert_eq!(
        e[0],
        format!(
            "t:1:4: secret nope is not in {}: create it, or give a default: {{{{ secrets.nope | default \"...\" }}}}",
            dir.display()
        )
    );
    assert_eq!(
        e[1],
        "t:2:4: both BOTH and BOTH_FILE are set: unset one of them"
    );
    assert_eq!(
        e[2],
        "t:3:4: GONE_FILE names a file that does not exist: fix GONE_FILE, or mount the file"
    );
    assert!(e[3].contains("secret db_password is not one"), "{e:?}");
    for line in &e {
        for value in ["hunter2", "visible-value", "/nonexistent/x"] {
            assert!(!line.contains(value), "{line}");
        }
    }
}

#[test]
fn container_facts_are_detected_only_when_named() {
    let v = values(&[("A", "x")]);
    render_template("t", b"{{ A }}", &v).unwrap();
    assert!(!v.container_detected());
    render_template("t", b"{{ if container.memory_limited }}{{ endif }}", &v).unwrap();
    assert!(v.container_detected());
}

#[test]
fn unreadable_container_facts_are_errors_at_their_position() {
    let v = Values::new(Vec::new(), PathBuf::from("/nonexistent/secrets")).with_container_result(
        || {
            Err(crate::container::Unreadable {
                file: "/proc/meminfo".into(),
                reason: "No such file or directory".into(),
            })
        },
    );
    let e = render_template(
        "app.conf.tmpl",
        b"a\n  mem={{ container.memory_mib }}\n",
        &v,
    )
    .unwrap_err();
    assert_eq!(
        e,
        vec![
            "app.conf.tmpl:2:10: container.memory_mib: cannot read /proc/meminfo: No such file or directory (are /proc and /sys mounted?)"
                .to_string()
        ]
    );
}

#[test]
fn errors_never_list_variables() {
    let many: Vec<(String, String)> = (0..50)
        .map(|i| (format!("VAR_{i}"), format!("value{i}")))
        .collect();
    let env: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let e = err("{{ MISSING }}", &env);
    assert_eq!(e.len(), 1);
    assert!(!e[0].contains("VAR_") && !e[0].contains("value"), "{e:?}");
}

#[test]
fn output_is_limited() {
    let big = "x".repeat(MAX_VALUE);
    let src = "{{ for i in L }}{{ B }}{{ endfor }}";
    let list = vec!["i"; 17].join(",");
    let e = err(src, &[("B", &big), ("L", &list)]);
    assert!(e[0].contains("larger than 16 MiB"), "{e:?}");
    // Nested loops stop at the step limit, quickly.
    let list = vec!["i"; 200].join(",");
    let e = err(
        "{{ for a in L }}{{ for b in L }}{{ for c in L }}{{ endfor }}{{ endfor }}{{ endfor }}",
        &[("L", &list)],
    );
    assert!(e[0].contains("more than"), "{e:?}");
}

/// A tiny xorshift PRNG: the property tests need no crate.
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

const ALPHABET: &[&str] = &[
    "{",
    "}",
    "\\",
    "{{",
    "}}",
    "|",
    "\"",
    " ",
    "\n",
    "\r\n",
    "\t",
    "a",
    "Z",
    "_",
    "0",
    "9",
    "-",
    ".",
    "if",
    "else",
    "endif",
    "for",
    "endfor",
    "in",
    "not",
    "A",
    "L",
    "item",
    "secrets.",
    "container.",
    "cpus",
    "memory_mib",
    "upper",
    "lower",
    "json",
    "shell",
    "default",
    "percent",
    "div",
    "mul",
    "add",
    "sub",
    "min",
    "max",
    "ü",
    "\u{1F600}",
    "#",
    "$",
    "%",
    "\0",
];

/// Text without `{{` (and not ending in `{`, which would join the next tag).
fn random_text(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(12) {
        s.push_str(match rng.below(8) {
            0 => "{",
            1 => "}",
            2 => "\\",
            3 => "\n",
            4 => "ü",
            5 => "$",
            6 => " ",
            _ => "x",
        });
        while s.contains("{{") {
            s.pop();
        }
    }
    s
}

#[test]
fn property_random_surface_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v = values(&[("A", "12"), ("L", "x,y, z"), ("E", "")]);
    for _ in 0..20_000 {
        let mut src = String::new();
        for _ in 0..rng.below(24) {
            src.push_str(ALPHABET[rng.below(ALPHABET.len())]);
        }
        let _ = render_template("t", src.as_bytes(), &v);
        if !src.contains("{{") {
            assert_eq!(render_template("t", src.as_bytes(), &v).unwrap(), src);
        }
    }
    // Arbitrary bytes too.
    for _ in 0..5_000 {
        let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let _ = render_template("t", &bytes, &v);
    }
}

#[test]
fn property_text_and_tags_round_trip_byte_exact() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let v = values(&[("A", "{\\}"), ("B", "\\"), ("L", "p,q")]);
    for _ in 0..20_000 {
        let mut src = String::new();
        let mut want = String::new();
        for _ in 0..rng.below(6) {
            let text = random_text(&mut rng);
            src.push_str(&text);
            want.push_str(&text);
            let (tag, out) = match rng.below(6) {
                0 => ("{{ A }}", "{\\}"),
                1 => ("{{B}}", "\\"),
                2 => ("{{ \"{{\" }}", "{{"),
                3 => ("{{ for i in L }}{{ i }}\\{{ endfor }}", "p\\q\\"),
                4 => ("{{ if A }}\\{{ else }}no{{ endif }}", "\\"),
                _ => ("{{ \"\\\\\" }}", "\\"),
            };
            src.push_str(tag);
            want.push_str(out);
        }
        let text = random_text(&mut rng);
        src.push_str(&text);
        want.push_str(&text);
        match render_template("t", src.as_bytes(), &v) {
            Ok(got) => assert_eq!(got, want, "{src:?}"),
            Err(e) => panic!("{src:?}: {e:?}"),
        }
    }
}

fn pair(src: &std::path::Path, dest: &std::path::Path) -> PathPair {
    PathPair {
        src: src.to_path_buf(),
        dest: dest.to_path_buf(),
    }
}

#[test]
fn a_run_reports_every_template_and_writes_nothing_on_failure() {
    let dir = tempdir("run-fail");
    fs::write(dir.join("a.tmpl"), "x = {{ MISSING_A }}\n").unwrap();
    fs::write(dir.join("b.tmpl"), "ok\ny = {{ MISSING_B }}\n").unwrap();
    fs::write(dir.join("good.tmpl"), "fine\n").unwrap();
    fs::write(dir.join("a.out"), "old a").unwrap();
    let settings = RenderSettings {
        templates: vec![
            pair(&dir.join("good.tmpl"), &dir.join("good.out")),
            pair(&dir.join("a.tmpl"), &dir.join("a.out")),
            pair(&dir.join("b.tmpl"), &dir.join("b.out")),
        ],
        ..RenderSettings::default()
    };
    let failure = run_with(&settings, &values(&[])).unwrap_err();
    let a = dir.join("a.tmpl");
    let b = dir.join("b.tmpl");
    assert_eq!(failure.problems.len(), 2, "{failure:?}");
    assert!(failure.problems[0].starts_with(&format!("{}:1:8: MISSING_A is not set", a.display())));
    assert!(failure.problems[1].starts_with(&format!("{}:2:8: MISSING_B is not set", b.display())));
    assert_eq!(fs::read(dir.join("a.out")).unwrap(), b"old a");
    assert!(!dir.join("good.out").exists());
    assert!(!dir.join("b.out").exists());
}

#[test]
fn a_run_renders_directories_and_ini_and_check_writes_nothing() {
    let dir = tempdir("run-ok");
    let src = dir.join("templates");
    fs::create_dir_all(src.join("conf.d")).unwrap();
    fs::write(
        src.join("php.ini.tmpl"),
        "memory_limit = {{ PHP_MEMORY_LIMIT | default \"128M\" }}\n",
    )
    .unwrap();
    fs::write(
        src.join("conf.d/www.conf"),
        "pm.max_children = {{ container.memory_mib | div 64 | max 2 }}\n",
    )
    .unwrap();
    let out = dir.join("out");
    let settings = RenderSettings {
        templates: vec![pair(&src, &out)],
        ini: vec![IniTarget {
            prefix: "PHP_INI_".into(),
            dest: out.join("zz-env.ini"),
        }],
        check: true,
        diff: false,
        secrets_dir: dir.join("secrets"),
    };
    let v = values(&[
        ("PHP_MEMORY_LIMIT", "1G"),
        ("PHP_INI_upload_max_filesize", "16M"),
    ]);
    let summary = run_with(&settings, &v).unwrap();
    assert_eq!(
        summary,
        Summary {
            rendered: 3,
            written: 0
        }
    );
    assert!(!out.exists());
    let settings = RenderSettings {
        check: false,
        ..settings
    };
    let summary = run_with(&settings, &v).unwrap();
    assert_eq!(
        summary,
        Summary {
            rendered: 3,
            written: 3
        }
    );
    assert_eq!(
        fs::read_to_string(out.join("php.ini")).unwrap(),
        "memory_limit = 1G\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("conf.d/www.conf")).unwrap(),
        "pm.max_children = 32\n"
    );
    assert!(
        fs::read_to_string(out.join("zz-env.ini"))
            .unwrap()
            .ends_with("upload_max_filesize = 16M\n")
    );
}

#[test]
fn a_run_refuses_two_outputs_to_one_dest() {
    let dir = tempdir("run-dup");
    fs::write(dir.join("a"), "a").unwrap();
    fs::write(dir.join("a.tmpl"), "b").unwrap();
    let settings = RenderSettings {
        templates: vec![
            pair(&dir, &dir.join("out")),
            pair(&dir.join("a"), &dir.join("out/a")),
        ],
        ..RenderSettings::default()
    };
    let failure = run_with(&settings, &values(&[])).unwrap_err();
    assert_eq!(failure.problems.len(), 2, "{failure:?}");
    assert!(failure.problems[0].contains("written by two"));
}
