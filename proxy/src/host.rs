//! This machine's interfaces and their IPv4 addresses, as `vstack proxy`
//! checks them. Read from the kernel by [`LocalAddrs::system`]; tests build
//! one by hand. [`netlink`]: route netlink requests (links, neighbours) to
//! the kernel, one at a time.
pub mod netlink;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Interfaces (by Linux name) and the IPv4 addresses on each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    interfaces: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl LocalAddrs {
    /// An empty list: no interface, no address.
    pub fn new() -> Self {
        Self::default()
    }

    /// This list with interface `name` holding `addrs` (added to any it had).
    pub fn with(mut self, name: &str, addrs: &[Ipv4Addr]) -> Self {
        let entry = self.interfaces.entry(name.to_owned()).or_default();
        for a in addrs {
            if !entry.contains(a) {
                entry.push(*a);
            }
        }
        self
    }

    /// The interfaces and IPv4 addresses of the calling thread's network
    /// namespace (`getifaddrs(3)`); interfaces without IPv4 are listed too.
    pub fn system() -> std::io::Result<Self> {
        let mut out = Self::new();
        for ifa in nix::ifaddrs::getifaddrs()? {
            let entry = out.interfaces.entry(ifa.interface_name).or_default();
            let sin = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in());
            if let Some(ip) = sin.map(|sin| sin.ip())
                && !entry.contains(&ip)
            {
                entry.push(ip);
            }
        }
        Ok(out)
    }

    /// Whether `ip` is on one of the interfaces.
    pub fn has_ip(&self, ip: Ipv4Addr) -> bool {
        self.interfaces.values().any(|addrs| addrs.contains(&ip))
    }

    /// The IPv4 addresses of interface `name`, or `None` if there is no
    /// such interface.
    pub fn interface(&self, name: &str) -> Option<&[Ipv4Addr]> {
        self.interfaces.get(name).map(Vec::as_slice)
    }

    /// The interface names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.interfaces.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_lists_answer_lookups() {
        let ip = Ipv4Addr::new(4, 1, 1, 1);
        let local = LocalAddrs::new().with("vlan1", &[ip, ip]).with("eth0", &[]);
        assert!(local.has_ip(ip));
        assert!(!local.has_ip(Ipv4Addr::new(4, 1, 1, 2)));
        assert_eq!(local.interface("vlan1"), Some(&[ip][..]));
        assert_eq!(local.interface("eth0"), Some(&[][..]));
        assert_eq!(local.interface("eth1"), None);
        assert_eq!(local.names().collect::<Vec<_>>(), ["eth0", "vlan1"]);
    }

    #[test]
    fn system_list_reads_the_kernel() -> std::io::Result<()> {
        let local = LocalAddrs::system()?;
        if let Some(lo) = local.interface("lo").filter(|a| !a.is_empty()) {
            assert!(lo.contains(&Ipv4Addr::LOCALHOST), "lo holds {lo:?}");
        }
        Ok(())
    }
}
