//! Who listens on a replica's port. Two replicas (of this platform and of a
//! crashed run's leftovers, or of two platforms sharing a port range) can both
//! find a port free and both be handed it: the one that loses cannot bind, yet
//! its ready check succeeds, answered by the winner. So a replica is ready
//! only once the listener on its port is one of its own processes (its
//! process group), read from `/proc/net/tcp{,6}` and the group's descriptors.

use std::collections::HashSet;

/// Whether every listening socket on loopback-reachable `port` belongs to a
/// process of the group `pgid`; `None` when that cannot be told (no
/// `/proc/net`, or no listener seen), which callers take as yes.
pub fn owned_by_group(port: u16, pgid: u32) -> Option<bool> {
    let listeners = listeners(port)?;
    if listeners.is_empty() {
        return None;
    }
    let mut left = listeners;
    for pid in group_members(pgid) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| socket_inode(&l.to_string_lossy()))
            {
                left.remove(&inode);
            }
        }
        if left.is_empty() {
            return Some(true);
        }
    }
    Some(false)
}

/// The inodes of the sockets listening on `port` (any address), or `None`
/// when the tables cannot be read.
fn listeners(port: u16) -> Option<HashSet<u64>> {
    let mut found = HashSet::new();
    let mut read_any = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        read_any = true;
        found.extend(text.lines().skip(1).filter_map(|l| listener(l, port)));
    }
    read_any.then_some(found)
}

/// The inode of a `/proc/net/tcp` row when it is a listener on `port`:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode`.
fn listener(row: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = row.split_whitespace().collect();
    let local_port = fields.get(1)?.rsplit(':').next()?;
    const LISTEN: &str = "0A";
    (u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == LISTEN)
        .then(|| fields.get(9)?.parse().ok())
        .flatten()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the command's ')': state, parent, process group.
                stat.rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().nth(2))
                    .and_then(|g| g.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn a_listener_of_this_process_is_its_groups_and_not_another_groups() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stat = std::fs::read_to_string("/proc/self/stat").expect("own stat");
        let own_group: u32 = stat[stat.rfind(')').expect("stat") + 1..]
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse().ok())
            .expect("own process group");
        assert_eq!(owned_by_group(port, own_group), Some(true));
        // No process leads a group numbered u32::MAX.
        assert_eq!(owned_by_group(port, u32::MAX), Some(false));
        drop(listener);
        assert_eq!(owned_by_group(port, own_group), None, "nobody listens");
    }

    #[test]
    fn rows_of_proc_net_tcp_are_read_by_port_and_state() {
        let row = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener(row, 8080), Some(424_242));
        assert_eq!(listener(row, 8081), None);
        let established = row.replacen(" 0A ", " 01 ", 1);
        assert_eq!(listener(&established, 8080), None);
        assert_eq!(socket_inode("socket:[77]"), Some(77));
        assert_eq!(socket_inode("pipe:[77]"), None);
    }
}
