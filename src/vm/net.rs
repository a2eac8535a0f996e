//! The network a VM asks for, read from `ENVINIT_NET` as a list of items
//! ([`NetItem`]) that `netlink` applies in order. A pure parser; items
//! borrow the text they were read from.
//!
//! # `ENVINIT_NET` (several interfaces, prefix lengths, IPv6, MTU)
//!
//! A list of items, each one fact: `IFACE:ADDRESS/PREFIX` (IPv4 or IPv6,
//! repeat for more), `IFACE:gw=ADDRESS` (a default route through it; the
//! last one of an address family wins), `IFACE:mtu=N`, `IFACE:up` (up
//! without an address), `dns=ADDRESS`, `search=DOMAIN`. Example:
//! `ENVINIT_NET=eth0:10.0.2.15/24,eth0:gw=10.0.2.2,dns=10.0.2.3`.
//!
//! # `ip=`
//!
//! The kernel's own parameter is the kernel's: a kernel with CONFIG_IP_PNP
//! configures the interface before envinit starts (envinit leaves it as it
//! is), one without it (Debian's cloud kernel) ignores it, and envinit then
//! says so once. Either way the word never reaches the app's environment.
//! (Reading `ip=` too cost 2.6 KB of binary for what `ENVINIT_NET` already
//! says: docs/vm.md, "Network".)
//!
//! No DHCP client: see docs/vm.md ("Network") for why.

use std::net::IpAddr;

/// One fact about the network. Addresses are kept as written (checked to
/// be addresses when parsed), so writing them into /etc/hosts needs no
/// formatting code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetItem<'a> {
    /// `dns=ADDRESS`.
    Dns(&'a str),
    /// `search=DOMAIN`.
    Search(&'a str),
    /// `IFACE:ADDRESS/PREFIX`.
    Address(&'a str, &'a str, u8),
    /// `IFACE:gw=ADDRESS`.
    Gateway(&'a str, &'a str),
    /// `IFACE:mtu=N`.
    Mtu(&'a str, u32),
    /// `IFACE:up`.
    Up(&'a str),
}

/// Parses one item of `ENVINIT_NET`.
pub fn parse_net(text: &str) -> Result<NetItem<'_>, String> {
    let text = text.trim();
    let problem = match net_item(text) {
        Ok(item) => return Ok(item),
        Err(problem) => problem,
    };
    Err(format!("{text:?}: {problem}"))
}

#[inline(never)]
fn net_item(text: &str) -> Result<NetItem<'_>, &'static str> {
    const ADDRESS: &str = "not an IPv4 or IPv6 address";
    let address = |a: &str| a.parse::<IpAddr>().map_err(|_| ADDRESS);
    if let Some(server) = text.strip_prefix("dns=") {
        return address(server).map(|_| NetItem::Dns(server));
    }
    if let Some(domain) = text.strip_prefix("search=") {
        return match domain.is_empty() || domain.contains(' ') {
            true => Err("write search=DOMAIN"),
            false => Ok(NetItem::Search(domain)),
        };
    }
    let Some((name, what)) = text.split_once(':').filter(|(n, _)| is_iface(n)) else {
        return Err(
            "write IFACE:ADDRESS/PREFIX, IFACE:gw=ADDRESS, IFACE:mtu=N, IFACE:up, dns=ADDRESS or search=DOMAIN (IFACE: 1 to 15 characters, e.g. eth0)",
        );
    };
    if what == "up" {
        return Ok(NetItem::Up(name));
    }
    if let Some(gateway) = what.strip_prefix("gw=") {
        return address(gateway).map(|_| NetItem::Gateway(name, gateway));
    }
    if let Some(mtu) = what.strip_prefix("mtu=") {
        return match mtu.parse::<u32>() {
            Ok(n) if (68..=65535).contains(&n) => Ok(NetItem::Mtu(name, n)),
            _ => Err("the MTU must be a number from 68 to 65535"),
        };
    }
    let Some((host, prefix)) = what.split_once('/') else {
        return Err("give the prefix length: IFACE:ADDRESS/PREFIX");
    };
    let max = match address(host)? {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    match prefix.parse::<u32>() {
        Ok(p) if p <= max => Ok(NetItem::Address(name, host, p as u8)),
        _ => Err("the prefix length must be 0 to 32 (IPv4) or 128 (IPv6)"),
    }
}

/// An interface name as the kernel allows it: 1 to 15 bytes, no `/`, no
/// white space (and no `:`, which ends it here).
fn is_iface(name: &str) -> bool {
    (1..=15).contains(&name.len()) && !name.contains(['/', ' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::NetItem::*;
    use super::*;

    #[test]
    fn envinit_net_items() {
        assert_eq!(
            parse_net("eth0:10.0.2.15/24"),
            Ok(Address("eth0", "10.0.2.15", 24))
        );
        assert_eq!(
            parse_net(" eth0:fd00::15/64 "),
            Ok(Address("eth0", "fd00::15", 64))
        );
        assert_eq!(parse_net("eth0:gw=fe80::1"), Ok(Gateway("eth0", "fe80::1")));
        assert_eq!(parse_net("eth1:mtu=1400"), Ok(Mtu("eth1", 1400)));
        assert_eq!(parse_net("eth1:up"), Ok(Up("eth1")));
        assert_eq!(parse_net("dns=10.0.2.3"), Ok(Dns("10.0.2.3")));
        assert_eq!(parse_net("search=svc.local"), Ok(Search("svc.local")));
        for (bad, says) in [
            ("eth0:10.0.2.15", "give the prefix length"),
            ("eth0:10.0.2.15/33", "0 to 32 (IPv4)"),
            ("eth0:fd00::1/129", "or 128 (IPv6)"),
            ("eth0:mtu=9", "from 68 to 65535"),
            ("eth0:gw=x", "not an IPv4 or IPv6 address"),
            ("dns=", "not an IPv4 or IPv6 address"),
            ("10.0.2.15/24", "write IFACE:ADDRESS/PREFIX"),
            ("fd00::1/64", "not an IPv4 or IPv6 address"),
            ("eth0", "write IFACE:ADDRESS/PREFIX"),
            ("search=", "write search=DOMAIN"),
            ("averyveryverylongname:up", "IFACE: 1 to 15 characters"),
        ] {
            let err = parse_net(bad).unwrap_err();
            assert!(err.starts_with(&format!("{:?}: ", bad.trim())), "{err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
