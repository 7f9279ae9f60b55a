//! Layer-4 protocols, ports and the concrete service a connection targets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
    #[serde(rename = "ICMP")]
    Icmp,
    #[serde(rename = "ICMPv6")]
    Icmpv6,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Tcp,
        Protocol::Udp,
        Protocol::Sctp,
        Protocol::Icmp,
        Protocol::Icmpv6,
    ];

    /// TCP, UDP and SCTP carry ports; ICMP carries a type and code instead.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp | Protocol::Sctp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
            Protocol::Icmpv6 => "ICMPv6",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    /// Case-insensitive: `TCP`, `tcp`, `ICMPv6`, `icmp6` all work.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            "icmp" => Ok(Protocol::Icmp),
            "icmpv6" | "icmp6" => Ok(Protocol::Icmpv6),
            _ => Err(format!(
                "unknown protocol {s:?}; expected TCP, UDP, SCTP, ICMP or ICMPv6"
            )),
        }
    }
}

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn single(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// The concrete layer-4 service one connection (or probe) targets:
/// a destination port for TCP/UDP/SCTP, a type and code for ICMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    Port { protocol: Protocol, port: u16 },
    Icmp { v6: bool, icmp_type: u8, code: u8 },
}

impl L4 {
    pub fn tcp(port: u16) -> Self {
        L4::Port {
            protocol: Protocol::Tcp,
            port,
        }
    }

    pub fn udp(port: u16) -> Self {
        L4::Port {
            protocol: Protocol::Udp,
            port,
        }
    }

    pub fn protocol(&self) -> Protocol {
        match *self {
            L4::Port { protocol, .. } => protocol,
            L4::Icmp { v6: false, .. } => Protocol::Icmp,
            L4::Icmp { v6: true, .. } => Protocol::Icmpv6,
        }
    }

    pub fn port(&self) -> Option<u16> {
        match *self {
            L4::Port { port, .. } => Some(port),
            L4::Icmp { .. } => None,
        }
    }
}

impl fmt::Display for L4 {
    /// `TCP/80`, `UDP/53`, `ICMP/8/0`: the notation of `--probe` and of the matrix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            L4::Port { protocol, port } => write!(f, "{protocol}/{port}"),
            L4::Icmp {
                v6,
                icmp_type,
                code,
            } => {
                let p = if v6 { "ICMPv6" } else { "ICMP" };
                write!(f, "{p}/{icmp_type}/{code}")
            }
        }
    }
}

impl FromStr for L4 {
    type Err = String;
    /// `TCP/80`, `udp/53`, `SCTP/80`, `ICMP` (echo request), `ICMP/8`, `ICMP/3/4`, `ICMPv6/128`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('/');
        let proto: Protocol = parts.next().unwrap_or_default().parse()?;
        let rest: Vec<&str> = parts.collect();
        let num = |x: &str, what: &str, max: u32| -> Result<u32, String> {
            x.parse::<u32>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: {what} must be a number from 0 to {max}, got {x:?}"))
        };
        if proto.has_ports() {
            match rest.as_slice() {
                [p] => {
                    let port = num(p, "the port", 65535)? as u16;
                    if port == 0 {
                        return Err(format!("{s:?}: port 0 is not a port"));
                    }
                    Ok(L4::Port {
                        protocol: proto,
                        port,
                    })
                }
                _ => Err(format!("{s:?}: expected PROTOCOL/PORT, such as TCP/80")),
            }
        } else {
            let v6 = proto == Protocol::Icmpv6;
            let echo = if v6 { 128 } else { 8 };
            let (t, c) = match rest.as_slice() {
                [] => (echo, 0),
                [t] => (num(t, "the ICMP type", 255)?, 0),
                [t, c] => (num(t, "the ICMP type", 255)?, num(c, "the ICMP code", 255)?),
                _ => return Err(format!("{s:?}: expected ICMP[/TYPE[/CODE]]")),
            };
            Ok(L4::Icmp {
                v6,
                icmp_type: t as u8,
                code: c as u8,
            })
        }
    }
}

/// Travels as its probe notation (`TCP/80`).
impl Serialize for L4 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for L4 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_notation_round_trips() {
        for s in ["TCP/80", "UDP/53", "SCTP/80", "ICMP/8/0", "ICMPv6/128/0"] {
            assert_eq!(s.parse::<L4>().unwrap().to_string(), s);
        }
        assert_eq!("icmp".parse::<L4>().unwrap().to_string(), "ICMP/8/0");
        assert!("TCP/0".parse::<L4>().is_err());
        assert!("TCP/65536".parse::<L4>().is_err());
        assert!("TCP".parse::<L4>().is_err());
        assert!("HTTP/80".parse::<L4>().is_err());
    }
}
