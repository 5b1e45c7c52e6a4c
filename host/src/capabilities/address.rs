//! Address classes a destination may not resolve to. Private, loopback and similar addresses need
//! a grant with `allow_private = true`; link-local addresses and the cloud metadata and credential
//! endpoints are refused even then, unless the grant names that exact address as its host. IPv6
//! forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are judged by the
//! address they embed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a destination address may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A public address: any grant may reach it.
    Public,
    /// Needs `allow_private = true` on the grant; the reason names the class.
    Private(&'static str),
    /// Refused even with `allow_private`, unless the grant names this exact address.
    Sensitive(&'static str),
}

/// Host names of cloud metadata services (they resolve to the metadata addresses, but a resolver
/// override or a split-horizon DNS could make them resolve anywhere).
pub fn is_metadata_host(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    [
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    ]
    .iter()
    .any(|name| h.eq_ignore_ascii_case(name))
}

/// The class of `ip`.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some((v4, form)) => match classify_v4(v4) {
                Class::Public if form == Embedding::Nat64Local => {
                    Class::Private("a local-use NAT64 address")
                }
                Class::Public => Class::Public,
                // Keep the class of the embedded address, so the reason reads the same.
                other => other,
            },
            None => classify_v6(v6),
        },
    }
}

/// Why an address may not be contacted without `allow_private`, or None when it is public.
pub fn restricted_address(ip: IpAddr) -> Option<&'static str> {
    match classify(ip) {
        Class::Public => None,
        Class::Private(why) | Class::Sensitive(why) => Some(why),
    }
}

/// Cloud metadata and credential endpoints (never reachable through a name).
pub fn is_metadata(ip: IpAddr) -> bool {
    matches!(classify(ip), Class::Sensitive(why) if why == METADATA)
}

const METADATA: &str = "a cloud metadata or credential address";

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    if METADATA_V4.contains(&o) {
        Class::Sensitive(METADATA)
    } else if ip.is_link_local() {
        Class::Sensitive("a link-local address")
    } else if ip.is_loopback() {
        Class::Private("a loopback address")
    } else if ip.is_private() {
        Class::Private("a private address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Class::Private("an unspecified address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Class::Private("a shared (carrier-grade NAT) address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Class::Private("an IETF protocol assignment (192.0.0.0/24)")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Class::Private("a benchmarking address (198.18.0.0/15)")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Class::Private("a broadcast, multicast or reserved address")
    } else {
        Class::Public
    }
}

/// AWS IMDS, ECS task credentials, EKS pod identity; Azure IMDS (same address as AWS) and
/// WireServer; GCP (169.254.169.254); Alibaba Cloud; Oracle Cloud's legacy endpoint.
const METADATA_V4: &[[u8; 4]] = &[
    [169, 254, 169, 254],
    [169, 254, 170, 2],
    [169, 254, 170, 23],
    [168, 63, 129, 16],
    [100, 100, 100, 200],
    [192, 0, 0, 192],
];

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if s[0] == 0xfd00 && s[1] == 0x0ec2 {
        // AWS IMDS and the ECS/EKS credential endpoints over IPv6: fd00:ec2::/32.
        Class::Sensitive(METADATA)
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Class::Sensitive("a link-local address")
    } else if ip.is_loopback() {
        Class::Private("a loopback address")
    } else if ip.is_unspecified() {
        Class::Private("an unspecified address")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Class::Private("a private (unique local) address")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Class::Private("a site-local address")
    } else if ip.is_multicast() {
        Class::Private("a multicast address")
    } else {
        Class::Public
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Embedding {
    Mapped,
    Compatible,
    Nat64,
    Nat64Local,
    SixToFour,
    Teredo,
}

/// The IPv4 address an IPv6 address carries, if it is one of the forms that routes to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<(Ipv4Addr, Embedding)> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some((v4, Embedding::Mapped));
    }
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        // Deprecated IPv4-compatible `::a.b.c.d`.
        return Some((low, Embedding::Compatible));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some((low, Embedding::Nat64));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        // RFC 8215 local-use prefix 64:ff9b:1::/48: the IPv4 address may sit at any of several
        // offsets, so judge the likely one and treat the prefix as private whatever it holds.
        return Some((low, Embedding::Nat64Local));
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return Some((v4, Embedding::SixToFour));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        // Teredo: the client's IPv4 address, inverted, in the last 32 bits.
        let inv = !u32::from(low);
        return Some((Ipv4Addr::from(inv), Embedding::Teredo));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Class {
        classify(s.parse().expect("ip"))
    }

    #[test]
    fn private_classes_need_allow_private() {
        for (ip, why) in [
            ("127.0.0.1", "a loopback address"),
            ("10.1.2.3", "a private address"),
            ("192.168.0.1", "a private address"),
            ("172.20.0.1", "a private address"),
            ("0.0.0.0", "an unspecified address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("192.0.0.8", "an IETF protocol assignment (192.0.0.0/24)"),
            ("198.18.0.1", "a benchmarking address (198.18.0.0/15)"),
            ("224.0.0.1", "a broadcast, multicast or reserved address"),
            ("::1", "a loopback address"),
            ("::", "an unspecified address"),
            ("fd12::1", "a private (unique local) address"),
            ("fec0::1", "a site-local address"),
            ("ff02::1", "a multicast address"),
        ] {
            assert_eq!(class(ip), Class::Private(why), "{ip}");
        }
    }

    #[test]
    fn link_local_is_sensitive_in_both_families() {
        for ip in [
            "169.254.1.1",
            "169.254.0.0",
            "169.254.255.255",
            "fe80::1",
            "febf::1",
        ] {
            assert_eq!(class(ip), Class::Sensitive("a link-local address"), "{ip}");
        }
    }

    #[test]
    fn cloud_metadata_host_names_are_known_in_any_case_and_with_a_trailing_dot() {
        for name in [
            "metadata.google.internal",
            "METADATA.Google.Internal.",
            "metadata",
            "Metadata..",
            "metadata.goog",
            "instance-data",
            "INSTANCE-DATA.ec2.internal.",
        ] {
            assert!(is_metadata_host(name), "{name}");
        }
        for name in [
            "metadata.example.com",
            "xmetadata",
            "instance-data.local",
            "",
        ] {
            assert!(!is_metadata_host(name), "{name}");
        }
    }

    #[test]
    fn cloud_metadata_and_credential_endpoints_are_sensitive() {
        for ip in [
            "169.254.169.254", // AWS, Azure IMDS, GCP, Oracle, DigitalOcean
            "169.254.170.2",   // AWS ECS task credentials
            "169.254.170.23",  // AWS EKS pod identity
            "168.63.129.16",   // Azure WireServer
            "100.100.100.200", // Alibaba Cloud
            "192.0.0.192",     // Oracle Cloud (legacy)
            "fd00:ec2::254",   // AWS IMDS over IPv6
            "fd00:ec2::23",    // AWS EKS pod identity over IPv6
            "fd00:ec2:1::1",
        ] {
            assert_eq!(class(ip), Class::Sensitive(METADATA), "{ip}");
            assert!(is_metadata(ip.parse().expect("ip")), "{ip}");
        }
        assert!(is_metadata_host("metadata.google.internal"));
        assert!(is_metadata_host("METADATA.google.internal."));
        assert!(!is_metadata_host("metadata.example.com"));
    }

    #[test]
    fn nat64_embedding_private_or_metadata_ipv4_is_judged_by_the_ipv4() {
        assert_eq!(class("64:ff9b::a9fe:a9fe"), Class::Sensitive(METADATA));
        assert_eq!(
            class("64:ff9b::169.254.169.254"),
            Class::Sensitive(METADATA)
        );
        assert_eq!(
            class("64:ff9b::127.0.0.1"),
            Class::Private("a loopback address")
        );
        assert_eq!(
            class("64:ff9b::10.0.0.7"),
            Class::Private("a private address")
        );
        assert_eq!(class("64:ff9b::93.184.216.34"), Class::Public);
        // The local-use prefix is private whatever it embeds.
        assert_eq!(
            class("64:ff9b:1::93.184.216.34"),
            Class::Private("a local-use NAT64 address")
        );
        assert_eq!(
            class("64:ff9b:1::10.0.0.1"),
            Class::Private("a private address")
        );
    }

    #[test]
    fn six_to_four_and_teredo_embedding_private_ipv4_are_refused() {
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        assert_eq!(
            class("2002:7f00:1::1"),
            Class::Private("a loopback address")
        );
        assert_eq!(
            class("2002:0a00:0007::"),
            Class::Private("a private address")
        );
        assert_eq!(class("2002:a9fe:a9fe::1"), Class::Sensitive(METADATA));
        assert_eq!(class("2002:5db8:d822::1"), Class::Public);
        // Teredo: the client IPv4 is inverted in the last 32 bits (127.0.0.1 -> 80ff:fffe).
        assert_eq!(
            class("2001:0:4136:e378:8000:63bf:80ff:fffe"),
            Class::Private("a loopback address")
        );
        assert_eq!(
            class("2001:0:4136:e378:8000:63bf:5601:5601"),
            Class::Sensitive(METADATA)
        );
        assert_eq!(class("2001:0:4136:e378:8000:63bf:a247:27dd"), Class::Public);
    }

    #[test]
    fn mapped_and_compatible_forms_are_judged_by_the_ipv4() {
        assert_eq!(
            class("::ffff:127.0.0.1"),
            Class::Private("a loopback address")
        );
        assert_eq!(class("::ffff:169.254.169.254"), Class::Sensitive(METADATA));
        assert_eq!(class("::10.0.0.1"), Class::Private("a private address"));
        assert_eq!(class("::169.254.170.2"), Class::Sensitive(METADATA));
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(class(ip), Class::Public, "{ip}");
        }
    }
}
