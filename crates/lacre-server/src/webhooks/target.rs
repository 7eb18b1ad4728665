//! Where a webhook may go: unless the operator allows private targets, no
//! address of the machine itself or of its private networks, checked at
//! every resolution (a name that resolves to one such address is refused
//! whole, so a rebinding resolver cannot slip one in among public ones).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The address is loopback, private, link-local or otherwise not public.
    #[error(
        "{0} is not a public address (set allow_private_targets = true in [webhooks] to allow it)"
    )]
    Private(IpAddr),
    /// The name did not resolve.
    #[error("cannot resolve {0}")]
    Unresolved(String),
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Reserved, 240.0.0.0/4.
        || a >= 240
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Site-local (deprecated), fec0::/10.
        || (first & 0xffc0) == 0xfec0
        // NAT64, 64:ff9b::/96: the IPv4 address it embeds decides.
        || (ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && {
            let o = ip.octets();
            private_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        })
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// Whether an address is not a public one: loopback, private, link-local,
/// unspecified, multicast, reserved, or such an IPv4 address written as
/// IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

/// Checks the addresses a name resolved to.
pub(super) fn check(addrs: &[SocketAddr], allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    match addrs.iter().find(|a| is_private(a.ip())) {
        Some(a) => Err(TargetError::Private(a.ip())),
        None => Ok(()),
    }
}

/// The resolver of the webhook client: the system's, then [`check`].
pub(super) struct GuardedResolver {
    pub(super) allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| TargetError::Unresolved(host.clone()))?
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(TargetError::Unresolved(host)) as _);
            }
            check(&addrs, allow_private)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::101:101",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn one_private_address_refuses_the_name() {
        let public: SocketAddr = "1.1.1.1:443".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:443".parse().unwrap();
        assert_eq!(check(&[public], false), Ok(()));
        assert_eq!(
            check(&[public, local], false),
            Err(TargetError::Private(local.ip()))
        );
        assert_eq!(check(&[public, local], true), Ok(()));
    }
}
