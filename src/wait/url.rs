//! URL forms of `--wait` and `--probe`: `tcp://HOST:PORT`,
//! `http://HOST[:PORT][/PATH]`, `unix:///PATH`, `file:///PATH`, parsed into a
//! [`Target`] with an error that says what is wrong. Pure functions.

use std::path::PathBuf;

/// One URL to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as written (used in every message).
    pub url: String,
    /// What to check.
    pub kind: Kind,
}

/// What a URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A TCP connection to `host:port`.
    Tcp {
        /// A name or an IP address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// A connection to a unix socket.
    Unix(PathBuf),
    /// The path exists.
    File(PathBuf),
    /// `GET path` answered with 2xx.
    Http {
        /// A name or an IP address (IPv6 without brackets).
        host: String,
        /// The port (80 unless given).
        port: u16,
        /// The Host header: the URL's authority as written.
        authority: String,
        /// Path and query, starting with `/`.
        path: String,
    },
}

/// Parses one `--wait`/`--probe` URL; the error says what is wrong.
pub fn parse(url: &str) -> Result<Target, String> {
    match parse_kind(url) {
        Ok(kind) => Ok(Target {
            url: url.to_string(),
            kind,
        }),
        Err(problem) => Err(format!("{url:?}: {problem}")),
    }
}

fn parse_kind(url: &str) -> Result<Kind, &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or(
        "not a URL: write tcp://HOST:PORT, http://HOST[:PORT]/PATH, unix:///PATH or file:///PATH",
    )?;
    let scheme = scheme.to_ascii_lowercase();
    Ok(match scheme.as_str() {
        "tcp" => {
            let (host, port) = host_port(rest.strip_suffix('/').unwrap_or(rest), None)?;
            Kind::Tcp { host, port }
        }
        "http" => {
            let rest = rest.split('#').next().unwrap_or(rest);
            let cut = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(cut);
            let (host, port) = host_port(authority, Some(80))?;
            if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err("the path holds a space or control character: percent-encode it");
            }
            let slash = if path.starts_with('/') { "" } else { "/" };
            Kind::Http {
                host,
                port,
                authority: authority.to_string(),
                path: format!("{slash}{path}"),
            }
        }
        "https" => {
            return Err(
                "https is not supported (envinit has no TLS): check the plain HTTP port, or tcp://HOST:443",
            );
        }
        "unix" if rest.starts_with('/') && !rest.contains('\0') => {
            Kind::Unix(socket_path(rest)?.into())
        }
        "file" if rest.starts_with('/') && !rest.contains('\0') => Kind::File(rest.into()),
        "unix" | "file" => return Err("give an absolute path, e.g. unix:///run/app.sock"),
        _ => {
            return Err(
                "unknown scheme: write tcp://HOST:PORT, http://HOST[:PORT]/PATH, unix:///PATH or file:///PATH",
            );
        }
    })
}

/// Checks a `unix://` path (absolute, no NUL): it must be able to name a
/// socket, so not the root, a directory (`/`, `.` or `..` at the end), or
/// more than a socket address holds. (A directory would be waited on until
/// the timeout, refused as "connection refused".)
fn socket_path(path: &str) -> Result<&str, &'static str> {
    let last = path.rsplit('/').next().unwrap_or("");
    if path.bytes().all(|b| b == b'/') {
        return Err("names the root directory, not a socket: write unix:///PATH/TO/SOCKET");
    }
    if last.is_empty() || last == "." || last == ".." {
        return Err("names a directory, not a socket: drop the trailing / (unix:///run/app.sock)");
    }
    // sockaddr_un's sun_path: 108 bytes with the NUL.
    if path.len() > 107 {
        return Err("a unix socket path holds at most 107 bytes (the kernel's sockaddr_un)");
    }
    Ok(path)
}

/// `host:port`, `[v6]:port`, or without the port when there is a default.
fn host_port(authority: &str, default_port: Option<u16>) -> Result<(String, u16), &'static str> {
    if authority.contains('@') {
        return Err("user names and passwords in URLs are not supported");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("not an IPv6 address between [ ]");
        }
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
            ),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_';
        if host.is_empty() || !host.bytes().all(valid) {
            return Err("not a host name or address (letters, digits, '.', '-', '_')");
        }
        (host, port)
    };
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("not a port (1-65535)")?,
        (None, Some(p)) => p,
        (None, None) => return Err("the port is missing (HOST:PORT)"),
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(url: &str) -> Kind {
        parse(url).unwrap().kind
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            kind("tcp://db:5432"),
            Kind::Tcp {
                host: "db".into(),
                port: 5432
            }
        );
        assert_eq!(
            kind("tcp://[::1]:80/"),
            Kind::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        assert_eq!(
            kind("http://web"),
            Kind::Http {
                host: "web".into(),
                port: 80,
                authority: "web".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            kind("HTTP://127.0.0.1:8080/healthz?full=1#x"),
            Kind::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                authority: "127.0.0.1:8080".into(),
                path: "/healthz?full=1".into()
            }
        );
        assert_eq!(
            kind("http://[::1]:81?q"),
            Kind::Http {
                host: "::1".into(),
                port: 81,
                authority: "[::1]:81".into(),
                path: "/?q".into()
            }
        );
        assert_eq!(kind("unix:///run/a.sock"), Kind::Unix("/run/a.sock".into()));
        // The longest path a socket address holds (107 bytes), and one more.
        let longest = format!("/{}", "a".repeat(106));
        assert_eq!(
            kind(&format!("unix://{longest}")),
            Kind::Unix(longest.clone().into())
        );
        let e = parse(&format!("unix://{longest}b")).unwrap_err();
        assert!(e.contains("at most 107 bytes"), "{e}");
        // file:// takes any path: a directory may be what is awaited.
        assert_eq!(kind("file:///"), Kind::File("/".into()));
        assert_eq!(kind("file:///run/"), Kind::File("/run/".into()));
        assert_eq!(kind("file:///tmp/ready"), Kind::File("/tmp/ready".into()));
        assert_eq!(parse("tcp://a:1").unwrap().url, "tcp://a:1");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("db:5432", "not a URL"),
            ("tcp://db", "port is missing"),
            ("tcp://db:0", "not a port"),
            ("tcp://db:65536", "not a port"),
            ("tcp://:80", "not a host name"),
            ("tcp://a b:80", "not a host name"),
            ("http://u:p@h/", "passwords"),
            ("https://h/", "https is not supported"),
            ("unix://rel.sock", "absolute path"),
            ("unix://", "absolute path"),
            ("unix:///", "root directory"),
            ("unix:////", "root directory"),
            ("unix:///run/", "names a directory"),
            ("unix:///run/app.sock/", "names a directory"),
            ("unix:///run/.", "names a directory"),
            ("unix:///run/..", "names a directory"),
            ("file://", "absolute path"),
            ("ftp://h/", "unknown scheme"),
            ("http://h/a b", "percent-encode"),
            ("http://h/a\r\nX: y", "percent-encode"),
            ("http://[::1/", "closing ]"),
            ("http://[nope]/", "not an IPv6"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
