//! The thin system-call side of the network: [`configure`] applies
//! `ENVINIT_NET`'s items with rtnetlink requests on a raw `NETLINK_ROUTE`
//! socket (link up and MTU, addresses, default routes), and the hostname
//! from eth0's MAC address. Messages are built by hand in a fixed buffer:
//! no crate (an rtnetlink crate brings an async runtime), no allocation per
//! request.
//!
//! Every request asks for the kernel's acknowledgement and returns its
//! errno. Addresses and routes are added with "create or replace", so
//! configuring an interface twice (a reboot of the same root) is fine.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

use super::net::NetItem;
use crate::exit::{self, Failure};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
const RTNH_F_ONLINK: u32 = 4;

/// One request under construction: `nlmsghdr`, the family header, the
/// attributes (each padded to 4 bytes).
struct Message {
    buf: [u8; 96],
    len: usize,
}

impl Message {
    #[inline(never)]
    fn new(kind: u16, flags: u16) -> Message {
        let mut message = Message {
            buf: [0; 96],
            len: 16,
        };
        message.buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        let flags = flags | NLM_F_REQUEST | NLM_F_ACK;
        message.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        message
    }

    #[inline(never)]
    fn bytes(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        self.buf[self.len..end].copy_from_slice(data);
        self.len = end.next_multiple_of(4);
    }

    #[inline(never)]
    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&kind.to_ne_bytes());
        self.len += 4;
        self.bytes(data);
    }
}

/// An rtnetlink socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens the socket.
    #[inline(never)]
    pub fn open() -> Result<Netlink, Errno> {
        // SAFETY: plain integers; the fd is new and ours.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sets the link up, with `mtu` if given.
    #[inline(never)]
    pub fn link_up(&mut self, index: u32, mtu: Option<u32>) -> Result<(), Errno> {
        let mut m = Message::new(RTM_NEWLINK, 0);
        // struct ifinfomsg: family, pad, type, index, flags, change.
        let up = libc::IFF_UP as u32;
        m.bytes(&[0, 0, 0, 0]);
        m.bytes(&index.to_ne_bytes());
        m.bytes(&up.to_ne_bytes());
        m.bytes(&up.to_ne_bytes());
        if let Some(mtu) = mtu {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        self.request(&mut m)
    }

    /// Adds `address/prefix` to the interface (IPv6 without duplicate
    /// address detection, so it is usable at once, as a static address in
    /// a VM's own network is).
    #[inline(never)]
    pub fn add_address(&mut self, index: u32, address: &str, prefix: u8) -> Result<(), Errno> {
        let address: IpAddr = address.parse().map_err(|_| Errno::EINVAL)?;
        let mut m = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        m.bytes(&[family(address), prefix, 0, 0]);
        m.bytes(&index.to_ne_bytes());
        match address {
            IpAddr::V4(v4) => {
                m.attr(IFA_LOCAL, &v4.octets());
                m.attr(IFA_ADDRESS, &v4.octets());
            }
            IpAddr::V6(v6) => {
                m.attr(IFA_ADDRESS, &v6.octets());
                m.attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
            }
        }
        self.request(&mut m)
    }

    /// Adds a default route through `gateway` on the interface (on-link:
    /// the gateway need not be inside one of its prefixes).
    #[inline(never)]
    pub fn add_default_route(&mut self, index: u32, gateway: &str) -> Result<(), Errno> {
        let gateway: IpAddr = gateway.parse().map_err(|_| Errno::EINVAL)?;
        let mut m = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        // scope, type, flags.
        m.bytes(&[
            family(gateway),
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            libc::RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ]);
        m.bytes(&RTNH_F_ONLINK.to_ne_bytes());
        match gateway {
            IpAddr::V4(v4) => m.attr(RTA_GATEWAY, &v4.octets()),
            IpAddr::V6(v6) => m.attr(RTA_GATEWAY, &v6.octets()),
        }
        m.attr(RTA_OIF, &index.to_ne_bytes());
        self.request(&mut m)
    }

    /// Sends `m` and reads the kernel's acknowledgement.
    #[inline(never)]
    fn request(&mut self, m: &mut Message) -> Result<(), Errno> {
        self.seq += 1;
        m.buf[0..4].copy_from_slice(&(m.len as u32).to_ne_bytes());
        m.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        let fd = self.fd.as_raw_fd();
        // SAFETY: send reads `len` bytes of our buffer; an unconnected
        // netlink socket sends to the kernel.
        if unsafe { libc::send(fd, m.buf.as_ptr().cast(), m.len, 0) } < 0 {
            return Err(Errno::last());
        }
        // Only acknowledgements come (no multicast group is joined): the
        // error code of `struct nlmsgerr` follows the 16-byte header.
        let mut reply = [0u8; 512];
        // SAFETY: recv writes at most the buffer's length.
        let got = unsafe { libc::recv(fd, reply.as_mut_ptr().cast(), reply.len(), 0) };
        if got < 0 {
            return Err(Errno::last());
        }
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        let error = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        match (got >= 20 && kind == NLMSG_ERROR, error) {
            (false, _) => Err(Errno::EBADMSG),
            (true, 0) => Ok(()),
            (true, e) => Err(Errno::from_raw(-e)),
        }
    }
}

fn family(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// What configuring the network found, for the names.
#[derive(Debug, Default)]
pub struct Configured<'a> {
    /// The VM's first address (for /etc/hosts).
    pub address: Option<&'a str>,
    /// DNS servers (for /etc/resolv.conf).
    pub dns: Vec<&'a str>,
    /// Search domains (for /etc/resolv.conf).
    pub search: Vec<&'a str>,
}

/// Applies `items` in order: link up (and MTU), addresses, default routes.
#[inline(never)]
pub fn configure<'a>(items: &[NetItem<'a>]) -> Result<Configured<'a>, Failure> {
    let mut done = Configured::default();
    let mut socket = None;
    for item in items {
        let (name, what, detail, mtu) = match *item {
            NetItem::Dns(server) => {
                done.dns.push(server);
                continue;
            }
            NetItem::Search(domain) => {
                done.search.push(domain);
                continue;
            }
            NetItem::Address(name, address, _) => (name, "add the address ", address, None),
            NetItem::Gateway(name, gateway) => {
                (name, "add a default route through ", gateway, None)
            }
            NetItem::Mtu(name, mtu) => (name, "set the MTU", "", Some(mtu)),
            NetItem::Up(name) => (name, "bring it up", "", None),
        };
        let Some(index) = index_of(name) else {
            return Err(Failure::new(
                exit::OS_ERROR,
                format!("ENVINIT_NET: no interface {name}: {LOAD_DRIVER}, or fix its name"),
            ));
        };
        let failed = |e: Errno| {
            Failure::new(
                exit::OS_ERROR,
                format!("ENVINIT_NET: {name}: cannot {what}{detail}: {}", e.desc()),
            )
        };
        let nl = match &mut socket {
            Some(nl) => nl,
            None => socket.insert(Netlink::open().map_err(failed)?),
        };
        nl.link_up(index, mtu).map_err(failed)?;
        match *item {
            NetItem::Address(_, address, prefix) => {
                nl.add_address(index, address, prefix).map_err(failed)?;
                done.address.get_or_insert(address);
            }
            NetItem::Gateway(_, gateway) => nl.add_default_route(index, gateway).map_err(failed)?,
            _ => {}
        }
    }
    Ok(done)
}

const LOAD_DRIVER: &str = "load its driver (virtio_net in the first stage) and check that the VMM gives the VM a network device";

/// The index of the interface `name`, if there is one.
#[inline(never)]
pub fn index_of(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name we own.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// A hostname from the MAC address of eth0 (the kernel's name for the
/// first network device): `vm-` and its 12 hex digits. Docker's are 12 hex
/// digits of the container's id; a MAC address is what names a machine to
/// its VMM, and stays across boots; the prefix keeps a name of digits only,
/// which resolvers take for a number, resolvable.
#[inline(never)]
pub fn mac_hostname() -> Option<String> {
    let text = std::fs::read("/sys/class/net/eth0/address").ok()?;
    let mut hostname = String::from("vm-");
    hostname.extend(
        text.iter()
            .filter(|b| b.is_ascii_hexdigit())
            .map(|b| char::from(*b)),
    );
    (hostname.len() == 15 && hostname != "vm-000000000000").then_some(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let mut m = Message::new(RTM_NEWLINK, 0);
        m.bytes(&[0; 16]);
        m.attr(IFLA_MTU, &1400u32.to_ne_bytes());
        assert_eq!(m.len, 16 + 16 + 8);
        assert_eq!(&m.buf[32..34], &8u16.to_ne_bytes());
        assert_eq!(&m.buf[34..36], &IFLA_MTU.to_ne_bytes());
        assert_eq!(&m.buf[36..40], &1400u32.to_ne_bytes());
        // An attribute of 5 bytes takes 8, padded.
        m.attr(1, &[1, 2, 3, 4, 5]);
        assert_eq!(m.len, 40 + 12);
        assert_eq!(&m.buf[40..42], &9u16.to_ne_bytes());
        assert_eq!(&m.buf[48..52], &[5, 0, 0, 0]);
    }

    #[test]
    fn the_loopback_has_its_address() {
        assert_eq!(index_of("lo"), Some(1));
        assert_eq!(index_of("no-such-if"), None);
    }
}
