//! The two ranges Services draw from (`--service-cluster-ip-range`,
//! `--service-node-port-range`), and how a free value is picked in one.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Inside loopback, so that a Service's virtual IP is reachable on this machine with no
/// network set-up, and apart from the pods' default range (`127.128.0.0/9`).
pub const DEFAULT_SERVICE_CLUSTER_IP_RANGE: &str = "127.96.0.0/12";
/// Kubernetes' default.
pub const DEFAULT_SERVICE_NODE_PORT_RANGE: &str = "30000-32767";

/// Both ranges, as the API server is configured with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ip: ServiceIpRange,
    pub node_ports: NodePortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ip: DEFAULT_SERVICE_CLUSTER_IP_RANGE
                .parse()
                .expect("the default range parses"),
            node_ports: DEFAULT_SERVICE_NODE_PORT_RANGE
                .parse()
                .expect("the default range parses"),
        }
    }
}

/// An IPv4 CIDR whose addresses, less the network and broadcast addresses, are Services'
/// virtual IPs. The first (network + 1) belongs to the `kubernetes` Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceIpRange {
    network: u32,
    prefix: u8,
}

impl ServiceIpRange {
    /// Widest range: 2^20 addresses, Kubernetes' limit too.
    const MIN_PREFIX: u8 = 12;
    /// Narrowest range: two usable addresses.
    const MAX_PREFIX: u8 = 30;

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses Services may get.
    pub fn size(&self) -> u64 {
        (1u64 << (32 - self.prefix)) - 2
    }

    /// The `kubernetes` Service's address.
    pub fn first(&self) -> Ipv4Addr {
        self.nth(0)
    }

    pub(crate) fn nth(&self, index: u64) -> Ipv4Addr {
        debug_assert!(index < self.size());
        Ipv4Addr::from(self.network + 1 + index as u32)
    }

    /// The index of `ip` among the usable addresses, `None` outside them.
    pub(crate) fn index_of(&self, ip: Ipv4Addr) -> Option<u64> {
        let offset = u64::from(u32::from(ip).checked_sub(self.network)?);
        (1..=self.size()).contains(&offset).then(|| offset - 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.index_of(ip).is_some()
    }

    /// Whether any address lies both here and in `network/prefix` (`--cluster-cidr`).
    pub fn overlaps(&self, network: Ipv4Addr, prefix: u8) -> bool {
        let shorter = self.prefix.min(prefix);
        self.network & mask(shorter) == u32::from(network) & mask(shorter)
    }

    /// How many addresses at the start are handed out at random only once all the others
    /// are taken: Kubernetes' static band, kept for Services that ask for a fixed address
    /// (a DNS Service on `.10`, say).
    pub(crate) fn static_band(&self) -> u64 {
        static_band(1u64 << (32 - self.prefix), 16, 256, 16)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Kubernetes' `calculateRangeOffset`: 1/`step` of the range, kept within `min..=max`;
/// nothing for ranges smaller than `min`.
fn static_band(size: u64, min: u64, max: u64, step: u64) -> u64 {
    if size < min {
        0
    } else {
        (size / step).clamp(min, max)
    }
}

impl FromStr for ServiceIpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not an IPv4 CIDR such as {DEFAULT_SERVICE_CLUSTER_IP_RANGE}");
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(Self::MIN_PREFIX..=Self::MAX_PREFIX).contains(&prefix) {
            return Err(format!(
                "{s:?}: a Service range must be between /{} and /{} (2^20 to 2 addresses)",
                Self::MIN_PREFIX,
                Self::MAX_PREFIX
            ));
        }
        Ok(ServiceIpRange {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }
}

impl fmt::Display for ServiceIpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// The ports NodePort and LoadBalancer Services open on every node, `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePortRange {
    first: u16,
    last: u16,
}

impl NodePortRange {
    pub fn first(&self) -> u16 {
        self.first
    }

    pub fn last(&self) -> u16 {
        self.last
    }

    pub fn size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    pub fn contains(&self, port: i64) -> bool {
        (i64::from(self.first)..=i64::from(self.last)).contains(&port)
    }

    pub(crate) fn nth(&self, index: u64) -> u16 {
        debug_assert!(index < self.size());
        self.first + index as u16
    }

    pub(crate) fn index_of(&self, port: u16) -> Option<u64> {
        self.contains(i64::from(port))
            .then(|| u64::from(port - self.first))
    }

    /// Kubernetes' static band for node ports (1/32 of the range, 16 to 128 ports).
    pub(crate) fn static_band(&self) -> u64 {
        static_band(self.size(), 16, 128, 32)
    }
}

impl FromStr for NodePortRange {
    type Err = String;

    /// `30000-32767`, or Kubernetes' other form `30000+2767` (first port + how many more).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a port range such as {DEFAULT_SERVICE_NODE_PORT_RANGE}");
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
        let (first, last) = if let Some((a, b)) = s.split_once('-') {
            (port(a)?, port(b)?)
        } else if let Some((a, more)) = s.split_once('+') {
            let first = port(a)?;
            (first, first.checked_add(port(more)?).ok_or_else(bad)?)
        } else {
            let p = port(s)?;
            (p, p)
        };
        if first == 0 || first > last {
            return Err(format!(
                "{s:?}: a port range runs from its first port (1 or more) up to its last"
            ));
        }
        Ok(NodePortRange { first, last })
    }
}

impl fmt::Display for NodePortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Picks a free index of `0..size`, as Kubernetes' allocators do: at random in the dynamic
/// band (`band..size`) first, then in the static band (`0..band`); each band is scanned
/// from a random start round to where it began, so a nearly full range is still searched
/// whole. `None`: every index is taken.
pub(crate) fn pick(
    size: u64,
    band: u64,
    taken: impl Fn(u64) -> bool,
    mut random_below: impl FnMut(u64) -> u64,
) -> Option<u64> {
    let band = band.min(size);
    for (lo, hi) in [(band, size), (0, band)] {
        let n = hi - lo;
        if n == 0 {
            continue;
        }
        let start = random_below(n);
        if let Some(i) = (0..n).map(|k| lo + (start + k) % n).find(|i| !taken(*i)) {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges_parse_and_hold_their_usable_addresses() {
        let r: ServiceIpRange = "127.96.0.0/12".parse().unwrap();
        assert_eq!(r.to_string(), "127.96.0.0/12");
        assert_eq!(r.first(), Ipv4Addr::new(127, 96, 0, 1));
        assert_eq!(r.size(), (1 << 20) - 2);
        assert!(r.contains(Ipv4Addr::new(127, 111, 255, 254)));
        assert!(!r.contains(Ipv4Addr::new(127, 111, 255, 255)), "broadcast");
        assert!(!r.contains(Ipv4Addr::new(127, 96, 0, 0)), "network");
        assert!(!r.contains(Ipv4Addr::new(127, 112, 0, 1)));
        assert_eq!(r.index_of(r.nth(41)), Some(41));
        assert_eq!(r.static_band(), 256);
        // Host bits are masked, as Go's ParseCIDR does.
        let masked: ServiceIpRange = "10.0.0.7/29".parse().unwrap();
        assert_eq!(masked.to_string(), "10.0.0.0/29");
        assert_eq!(masked.size(), 6);
        assert_eq!(masked.static_band(), 0);
        for bad in [
            "127.96.0.0",
            "127.96.0.0/8",
            "127.96.0.0/31",
            "::1/120",
            "x/12",
        ] {
            assert!(bad.parse::<ServiceIpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_ranges_keep_apart_from_the_pods() {
        let r = ServiceRanges::default().cluster_ip;
        assert!(!r.overlaps(Ipv4Addr::new(127, 128, 0, 0), 9));
        assert!(r.overlaps(Ipv4Addr::new(127, 0, 0, 0), 8));
        assert!(r.overlaps(Ipv4Addr::new(127, 100, 4, 0), 24));
    }

    #[test]
    fn port_ranges_parse_in_both_forms() {
        let r: NodePortRange = "30000-32767".parse().unwrap();
        assert_eq!(
            (r.size(), r.static_band(), r.to_string().as_str()),
            (2768, 86, "30000-32767")
        );
        let short: NodePortRange = "30000+9".parse().unwrap();
        assert_eq!(
            (short.to_string().as_str(), short.static_band()),
            ("30000-30009", 0)
        );
        assert!(r.contains(30000) && r.contains(32767) && !r.contains(32768));
        for bad in ["32767-30000", "0-10", "a-b", "30000-70000"] {
            assert!(bad.parse::<NodePortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn picks_prefer_the_dynamic_band_and_search_the_whole_range() {
        // Always start at the end of a band: the scan must wrap round.
        let last = |n: u64| n - 1;
        assert_eq!(pick(10, 4, |_| false, last), Some(9));
        assert_eq!(pick(10, 4, |i| i >= 5, last), Some(4));
        assert_eq!(pick(10, 4, |i| i >= 4, last), Some(3));
        assert_eq!(pick(10, 4, |i| i != 0, last), Some(0));
        assert_eq!(pick(10, 4, |_| true, last), None);
        assert_eq!(pick(10, 0, |i| i != 7, |_| 0), Some(7));
        assert_eq!(pick(0, 0, |_| false, |_| 0), None);
    }
}
