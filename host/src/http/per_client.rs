//! Open connections counted per client address, so one client cannot hold
//! every connection slot (with slow headers, say) and lock others out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct PerClient {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of a client; the count goes down when it drops.
pub struct Slot {
    client: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    /// A slot for `client`, or `None` when it already has `limit` open.
    /// The map holds only addresses with connections open, so it is
    /// bounded by the server's connection limit.
    pub fn open(&self, client: IpAddr) -> Option<Slot> {
        let client = client_key(client);
        let mut open = self.open.lock().expect("per-client lock");
        let count = open.entry(client).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            client,
            open: self.open.clone(),
        })
    }
}

/// The address a client is counted by: an IPv6 host usually holds a whole
/// /64, so its addresses count as one client.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
        v4 => v4,
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("per-client lock");
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_limit_and_frees_slots_on_drop() {
        let limits = PerClient::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limits.open(a).unwrap();
        let _second = limits.open(a).unwrap();
        assert!(limits.open(a).is_none());
        assert!(limits.open(b).is_some());
        drop(first);
        assert!(limits.open(a).is_some());
        assert!(limits.open.lock().unwrap().get(&b).is_none());
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
