//! /etc/hosts, /etc/resolv.conf and /etc/hostname, written as a container
//! runtime writes them when the image's are empty or missing (as `docker
//! export` leaves them).
//!
//! # What it promises
//!
//! - The image's files are never changed: the content is written under
//!   /run/envinit (a tmpfs) and bind-mounted over the file, as Docker
//!   does, so a read-only root works too. A file the image fills itself is
//!   left alone.
//! - hosts: `localhost` for IPv4 and IPv6 (Docker's lines), and the
//!   hostname on the VM's address (127.0.1.1 without one, Debian's way).
//!   resolv.conf: the DNS servers and search domains of the network
//!   config, or nothing when it names none. hostname: the hostname.
//! - A file that cannot be provided (a read-only root without the file to
//!   mount over) is a warning: the app may not need it.

use std::ffi::CString;

use nix::libc;

use crate::exit::errno_text;

/// Where the content is written before it is mounted over /etc.
const DIR: &str = "/run/envinit";

/// /etc/hosts for `hostname` on `address`.
#[inline(never)]
pub fn hosts(hostname: &str, address: Option<&str>) -> String {
    let address = address.unwrap_or("127.0.1.1");
    format!(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\
         {address}\t{hostname}\n"
    )
}

/// /etc/resolv.conf for these servers and domains; `None` without servers.
#[inline(never)]
pub fn resolv_conf(dns: &[&str], search: &[&str]) -> Option<String> {
    if dns.is_empty() {
        return None;
    }
    let mut text = String::new();
    if !search.is_empty() {
        text.push_str("search ");
        text.push_str(&search.join(" "));
        text.push('\n');
    }
    for server in dns {
        text.push_str(&format!("nameserver {server}\n"));
    }
    Some(text)
}

/// Whether /etc/`name` is missing or empty (and so is envinit's to fill).
#[inline(never)]
pub fn is_unset(name: &str) -> bool {
    std::fs::metadata(format!("/etc/{name}")).map_or(true, |m| m.len() == 0)
}

/// Puts `content` at /etc/`name` without changing the image: written to
/// /run/envinit/`name`, bind-mounted over /etc/`name` (created empty
/// first if missing and the root is writable).
#[inline(never)]
pub fn provide(name: &str, content: &str) -> Result<(), String> {
    let source = format!("{DIR}/{name}");
    let target = format!("/etc/{name}");
    super::machine::make_dirs(DIR);
    std::fs::write(&source, content)
        .map_err(|e| format!("cannot write {source}: {}", crate::exit::reason(&e)))?;
    let (Ok(source_c), Ok(target_c)) = (CString::new(source), CString::new(target.as_str())) else {
        return Err(format!("{target}: a NUL byte in the name"));
    };
    if std::fs::symlink_metadata(&target).is_err() {
        super::machine::make_dirs("/etc");
        // SAFETY: a NUL-terminated path we own; the fd is closed at once.
        let fd = unsafe {
            libc::open(
                target_c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return Err(format!(
                "cannot create {target} to mount the VM's over it: {} (on a read-only root, add an empty {target} to the image)",
                errno_text()
            ));
        }
        // SAFETY: our own fd.
        unsafe { libc::close(fd) };
    }
    // SAFETY: NUL-terminated paths we own; a bind mount.
    let bound = unsafe {
        libc::mount(
            source_c.as_ptr(),
            target_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) == 0
    };
    match bound {
        true => Ok(()),
        false => Err(format!("cannot mount the VM's {target}: {}", errno_text())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_docker_writes_it() {
        let text = hosts("web1", Some("10.0.2.15"));
        assert!(text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost"));
        assert!(text.ends_with("ff02::2\tip6-allrouters\n10.0.2.15\tweb1\n"));
        assert!(hosts("solo", None).ends_with("\n127.0.1.1\tsolo\n"));
    }

    #[test]
    fn resolv_conf_from_the_network_config() {
        let dns = ["10.0.2.3", "fd00::3"];
        assert_eq!(
            resolv_conf(&dns, &["example.com", "svc"]).unwrap(),
            "search example.com svc\nnameserver 10.0.2.3\nnameserver fd00::3\n"
        );
        assert_eq!(
            resolv_conf(&dns[..1], &[]).unwrap(),
            "nameserver 10.0.2.3\n"
        );
        assert_eq!(resolv_conf(&[], &["x"]), None);
    }
}
