//! Pod IPs, from the node's pod range (`Node.spec.podCIDR`, given by the controller manager).
//!
//! With the default range inside 127.0.0.0/8 every address is bindable on loopback, so each
//! pod's HTTP services listen on their own `podIP:containerPort` and two pods may use the
//! same port. An address is held by its pod's directory (`ip` file), so a restarted agent
//! gives every adopted pod the address it had.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use ipnet::Ipv4Net;

pub struct Ipam {
    range: Ipv4Net,
    used: Mutex<HashSet<Ipv4Addr>>,
}

impl Ipam {
    pub fn new(range: Ipv4Net) -> Ipam {
        Ipam {
            range,
            used: Mutex::default(),
        }
    }

    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// Marks an address as taken (an adopted pod's); false if it lies outside the range.
    pub fn claim(&self, ip: Ipv4Addr) -> bool {
        if !self.range.contains(&ip) {
            return false;
        }
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip);
        true
    }

    /// The lowest free address (the network's first host address is left for the node's own
    /// use, as a bridge gateway would be).
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let ip = self.range.hosts().skip(1).find(|ip| !used.contains(ip))?;
        used.insert(ip);
        Some(ip)
    }

    pub fn release(&self, ip: Ipv4Addr) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_address_once_and_reuses_released_ones() {
        let ipam = Ipam::new("127.130.4.0/30".parse().unwrap());
        assert_eq!(ipam.allocate(), Some(Ipv4Addr::new(127, 130, 4, 2)));
        assert_eq!(ipam.allocate(), None);
        ipam.release(Ipv4Addr::new(127, 130, 4, 2));
        assert!(ipam.claim(Ipv4Addr::new(127, 130, 4, 2)));
        assert_eq!(ipam.allocate(), None);
        assert!(!ipam.claim(Ipv4Addr::new(127, 0, 0, 1)));
    }
}
