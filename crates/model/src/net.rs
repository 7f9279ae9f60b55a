//! Address blocks used as policy peers.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A CIDR with holes: Kubernetes `ipBlock {cidr, except}` and bulkhead `cidr` peers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CidrBlock {
    pub net: IpNet,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

impl CidrBlock {
    pub fn new(net: IpNet) -> Self {
        CidrBlock {
            net: net.trunc(),
            except: Vec::new(),
        }
    }

    /// In the block and in none of its exceptions. An IPv4 address never matches an
    /// IPv6 block and vice versa (as in Kubernetes).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.net.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }
}

impl fmt::Display for CidrBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)?;
        if !self.except.is_empty() {
            f.write_str(" except ")?;
            for (i, e) in self.except.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
        }
        Ok(())
    }
}
