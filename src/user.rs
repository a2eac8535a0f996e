//! User: who the app runs as with `--user USER[:GROUP]`. Owns the parsing of
//! /etc/passwd and /etc/group (a static binary has no NSS: the files are
//! read directly) and the resolution of names and numeric ids into the
//! [`Identity`] the child gets between fork and exec.
//!
//! Promises:
//! - The parsers are pure functions over text; a malformed line is an error
//!   naming `FILE:LINE`, never skipped silently. Blank lines are allowed.
//! - Names and numbers resolve as `docker run --user` does: a numeric uid
//!   needs no passwd entry; without `:GROUP` the gid is the entry's group,
//!   or the uid's own number when there is no entry (never root's group 0
//!   by accident); a numeric gid needs no group entry; a name must exist.
//! - Supplementary groups are the gid followed by every group of /etc/group
//!   that lists the user's name (as gosu and su-exec set them): none of
//!   root's groups are kept. HOME is the entry's home, else `/`.
//! - The files are read at most [`MAX_FILE`] bytes each, and only when
//!   `--user` is given.

use std::io::Read;
use std::path::Path;

/// The largest passwd or group file read (4 MiB).
pub const MAX_FILE: u64 = 4 << 20;

/// Where the accounts are (the real files, or test copies).
pub const PASSWD: &str = "/etc/passwd";
/// See [`PASSWD`].
pub const GROUP: &str = "/etc/group";

/// What the child runs as: applied between fork and exec as setgroups,
/// setresgid, setresuid, and HOME in its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Real, effective and saved user id.
    pub uid: u32,
    /// Real, effective and saved group id.
    pub gid: u32,
    /// Supplementary groups (the gid first).
    pub groups: Vec<u32>,
    /// The user's home directory (`/` without a passwd entry).
    pub home: String,
}

/// One line of /etc/passwd (the fields envinit uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One line of /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// User names listed as members.
    pub members: Vec<String>,
}

/// Parses passwd text (`name:password:uid:gid:gecos:home:shell`); `file`
/// names it in errors (`FILE:LINE: ...`).
pub fn parse_passwd(file: &str, text: &str) -> Result<Vec<PasswdEntry>, String> {
    let rows = rows(file, text, "name:password:uid:gid:gecos:home:shell")?;
    Ok(rows
        .into_iter()
        .map(|f| PasswdEntry {
            name: f[0].to_string(),
            uid: parse_id(f[2]).unwrap_or(0),
            gid: parse_id(f[3]).unwrap_or(0),
            home: f[5].to_string(),
        })
        .collect())
}

/// Parses group text (`name:password:gid:members`, members separated by
/// commas); `file` names it in errors.
pub fn parse_group(file: &str, text: &str) -> Result<Vec<GroupEntry>, String> {
    let rows = rows(file, text, "name:password:gid:members")?;
    Ok(rows
        .into_iter()
        .map(|f| GroupEntry {
            name: f[0].to_string(),
            gid: parse_id(f[2]).unwrap_or(0),
            members: f[3]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
        })
        .collect())
}

/// The fields of every non-blank line, checked against `shape` (the field
/// names): the right count, a name, numbers where `uid` and `gid` are.
fn rows<'t>(file: &str, text: &'t str, shape: &str) -> Result<Vec<Vec<&'t str>>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let mut problem = None;
        if fields.len() != shape.split(':').count() {
            problem = Some(format!("{} fields, not {shape}", fields.len()));
        } else if fields[0].is_empty() {
            problem = Some("the name is empty".into());
        }
        for (name, value) in shape.split(':').zip(&fields) {
            if problem.is_none() && name.ends_with("id") && parse_id(value).is_none() {
                problem = Some(format!("the {name} is not a number"));
            }
        }
        if let Some(problem) = problem {
            return Err(format!(
                "{file}:{}: malformed line: {problem}: fix or remove the line",
                n + 1
            ));
        }
        rows.push(fields);
    }
    Ok(rows)
}

/// A decimal id (`0`-`4294967294`; -1 is not an id).
fn parse_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|id| *id != u32::MAX)
}

/// Resolves `USER[:GROUP]` against parsed entries (see the module doc for
/// the rules). Errors are one line naming what was not found.
pub fn resolve(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<Identity, String> {
    let (user, wanted_group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || wanted_group.is_some_and(str::is_empty) {
        return Err(format!(
            "--user {spec:?} is not USER[:GROUP] (names or numbers, e.g. app, 1000, app:staff, 1000:1000)"
        ));
    }
    let (uid, entry) = match parse_id(user) {
        Some(uid) => (uid, passwd.iter().find(|e| e.uid == uid)),
        None => {
            let e = passwd.iter().find(|e| e.name == user).ok_or_else(|| {
                format!(
                    "--user: no user {user:?} in {PASSWD}: add it (useradd) or give a numeric uid"
                )
            })?;
            (e.uid, Some(e))
        }
    };
    let gid = match wanted_group {
        Some(g) => match parse_id(g) {
            Some(gid) => gid,
            None => group
                .iter()
                .find(|e| e.name == g)
                .ok_or_else(|| {
                    format!(
                        "--user: no group {g:?} in {GROUP}: add it (groupadd) or give a numeric gid"
                    )
                })?
                .gid,
        },
        None => entry.map_or(uid, |e| e.gid),
    };
    let mut groups = vec![gid];
    if let Some(e) = entry {
        for g in group {
            if g.members.contains(&e.name) && !groups.contains(&g.gid) {
                groups.push(g.gid);
            }
        }
    }
    let home = match entry {
        Some(e) if !e.home.is_empty() => e.home.clone(),
        _ => "/".to_string(),
    };
    Ok(Identity {
        uid,
        gid,
        groups,
        home,
    })
}

/// Reads a passwd or group file, bounded; a missing file is empty (a
/// `FROM scratch` image may have none, and numeric ids still work).
fn read_bounded(path: &Path) -> Result<String, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(cannot_read(path, &e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot_read(path, &e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "--user: {} is larger than 4 MiB: envinit reads at most 4 MiB",
            path.display()
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("--user: {} is not valid UTF-8 text", path.display()))
}

fn cannot_read(path: &Path, e: &std::io::Error) -> String {
    let why = crate::exit::reason(e);
    format!("--user: cannot read {}: {why}", path.display())
}

/// Reads /etc/passwd and /etc/group and resolves `spec`.
pub fn lookup(spec: &str) -> Result<Identity, String> {
    lookup_in(spec, Path::new(PASSWD), Path::new(GROUP))
}

/// [`lookup`] over other passwd and group files (tests).
pub fn lookup_in(spec: &str, passwd: &Path, group: &Path) -> Result<Identity, String> {
    let users = parse_passwd(&passwd.display().to_string(), &read_bounded(passwd)?)?;
    // The group file is only needed for a group name or for members.
    let groups = parse_group(&group.display().to_string(), &read_bounded(group)?)?;
    resolve(spec, &users, &groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "root:x:0:0:root:/root:/bin/sh\n\
        app:x:1000:1001:App:/home/app:/bin/sh\n\
        \n\
        nohome:x:1002:1002:::/bin/false\n\
        dup:x:1000:5::/dup:/bin/sh\n";
    const GROUP_TEXT: &str = "root:x:0:\n\
        appgrp:x:1001:\n\
        staff:x:50:app,other\n\
        audio:x:29: other , app \n\
        nohome:x:1002:\n";

    fn ids(spec: &str) -> Result<Identity, String> {
        let p = parse_passwd("/etc/passwd", PASSWD_TEXT).unwrap();
        let g = parse_group("/etc/group", GROUP_TEXT).unwrap();
        resolve(spec, &p, &g)
    }

    #[test]
    fn names_resolve_with_groups_and_home() {
        assert_eq!(
            ids("app").unwrap(),
            Identity {
                uid: 1000,
                gid: 1001,
                groups: vec![1001, 50, 29],
                home: "/home/app".into()
            }
        );
        let i = ids("app:staff").unwrap();
        assert_eq!((i.uid, i.gid, i.groups), (1000, 50, vec![50, 29]));
        let i = ids("nohome").unwrap();
        assert_eq!((i.gid, i.home.as_str()), (1002, "/"));
    }

    #[test]
    fn numbers_need_no_entry() {
        // The first entry with the uid counts.
        let i = ids("1000").unwrap();
        assert_eq!((i.gid, i.home.as_str()), (1001, "/home/app"));
        let i = ids("4242").unwrap();
        assert_eq!(
            i,
            Identity {
                uid: 4242,
                gid: 4242,
                groups: vec![4242],
                home: "/".into()
            }
        );
        let i = ids("4242:7").unwrap();
        assert_eq!((i.uid, i.gid, i.groups), (4242, 7, vec![7]));
        let i = ids("app:9").unwrap();
        assert_eq!((i.gid, i.groups), (9, vec![9, 50, 29]));
        let i = ids("0").unwrap();
        assert_eq!((i.uid, i.gid, i.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn unknown_names_and_bad_specs() {
        let e = ids("nobody-here").unwrap_err();
        assert!(e.contains("no user \"nobody-here\" in /etc/passwd"), "{e}");
        let e = ids("app:nogroup").unwrap_err();
        assert!(e.contains("no group \"nogroup\" in /etc/group"), "{e}");
        for bad in ["", ":", "app:", ":staff"] {
            assert!(ids(bad).unwrap_err().contains("USER[:GROUP]"), "{bad:?}");
        }
        assert!(ids("4294967295").unwrap_err().contains("no user"));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e =
            parse_passwd("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nbad:x:1\n").unwrap_err();
        assert!(
            e.starts_with("/etc/passwd:2: malformed line: 3 fields"),
            "{e}"
        );
        let e = parse_passwd("/p", "a:x:zero:0::/:/bin/sh\n").unwrap_err();
        assert!(e.starts_with("/p:1: malformed line: the uid"), "{e}");
        let e = parse_passwd("/p", ":x:1:1::/:/bin/sh\n").unwrap_err();
        assert!(e.contains("the name is empty"), "{e}");
        let e = parse_group("/etc/group", "\n\nstaff:x:-1:\n").unwrap_err();
        assert!(
            e.starts_with("/etc/group:3: malformed line: the gid"),
            "{e}"
        );
        let e = parse_group("/g", "staff:x:1\n").unwrap_err();
        assert!(e.starts_with("/g:1: malformed line: 3 fields"), "{e}");
    }

    #[test]
    fn missing_files_are_empty_and_numbers_still_work() {
        let none = Path::new("/nonexistent/envinit/passwd");
        let i = lookup_in("1234", none, none).unwrap();
        assert_eq!((i.uid, i.gid, i.home.as_str()), (1234, 1234, "/"));
        assert!(
            lookup_in("app", none, none)
                .unwrap_err()
                .contains("no user")
        );
    }
}
