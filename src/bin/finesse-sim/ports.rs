//! Loopback ports for the simulator's REST listeners and its Prosody servers, and who listens
//! on a port.
//!
//! A port handed out by `bind(:0)` and then closed comes from the kernel's ephemeral range, the
//! same range every outgoing connection and every other process's `bind(:0)` draws from, so it
//! can be gone by the time Prosody binds it, or while a Prosody restarts, or while the REST
//! listener is closed for the "refused" fault. Prosody does not exit when it cannot bind: it
//! logs and serves nothing there, and a client then talks to whoever does hold the port. So
//! ports are drawn at random *below* the ephemeral range, checked free by binding them (all of
//! a batch held at once, so they differ), and a Prosody's listeners are checked by socket inode
//! to belong to its own process ([`listeners`]). Parallel simulators can still draw the same
//! port; that check catches it and the launch draws again.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::Context;
use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};
use rand::Rng;

/// The lowest port drawn.
const LOWEST: u16 = 10_000;
/// Draws per port before giving up.
const DRAWS: usize = 500;

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// `n` distinct free loopback ports, each held by a bound listener until the caller drops it.
pub fn reserve(n: usize) -> anyhow::Result<Vec<TcpListener>> {
    let top = ephemeral_start();
    let mut rng = rand::thread_rng();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = if top > LOWEST + 1_000 {
            (0..DRAWS)
                .find_map(|_| {
                    TcpListener::bind((Ipv4Addr::LOCALHOST, rng.gen_range(LOWEST..top))).ok()
                })
                .with_context(|| {
                    format!("no free loopback port in {LOWEST}..{top} after {DRAWS} draws")
                })?
        } else {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a loopback port")?
        };
        held.push(listener);
    }
    Ok(held)
}

/// A listener on `addr`; port 0 on loopback draws the port as [`reserve`] does.
pub fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    if addr.port() == 0 && addr.ip().is_loopback() {
        let mut one = reserve(1)?;
        if let Some(l) = one.pop() {
            return Ok(l);
        }
    }
    TcpListener::bind(addr).with_context(|| format!("binding {addr}"))
}

/// The port a held listener is bound to.
pub fn port(listener: &TcpListener) -> anyhow::Result<u16> {
    Ok(listener.local_addr()?.port())
}

/// Who is listening on a TCP port (any local address, IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Nobody.
    Nobody,
    /// The given process.
    Ours,
    /// Some other process.
    Other,
}

/// Who listens on each of `ports`, as seen from process `pid` (one read of the socket table
/// and of the process's descriptors for all of them).
pub fn listeners(pid: i32, ports: &[u16]) -> anyhow::Result<Vec<Listener>> {
    let mut table = procfs::net::tcp().context("reading /proc/net/tcp")?;
    if let Ok(v6) = procfs::net::tcp6() {
        table.extend(v6);
    }
    let inodes: Vec<Vec<u64>> = ports
        .iter()
        .map(|&port| {
            table
                .iter()
                .filter(|e| e.state == TcpState::Listen && e.local_address.port() == port)
                .map(|e| e.inode)
                .collect()
        })
        .collect();
    if inodes.iter().all(Vec::is_empty) {
        return Ok(vec![Listener::Nobody; ports.len()]);
    }
    let process = Process::new(pid).with_context(|| format!("reading /proc/{pid}"))?;
    let held: Vec<u64> = process
        .fd()
        .with_context(|| format!("reading /proc/{pid}/fd"))?
        .filter_map(Result::ok)
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    Ok(inodes
        .iter()
        .map(|of_port| match of_port {
            v if v.is_empty() => Listener::Nobody,
            v if v.iter().any(|i| held.contains(i)) => Listener::Ours,
            _ => Listener::Other,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_differ_and_lie_below_the_ephemeral_range() {
        let held = reserve(20).unwrap();
        let mut ports: Vec<u16> = held.iter().map(|l| port(l).unwrap()).collect();
        assert!(ports.iter().all(|p| *p < ephemeral_start()), "{ports:?}");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 20);
    }

    #[test]
    fn a_listener_is_told_apart_from_another_process_and_from_nobody() {
        let held = reserve(1).unwrap();
        let p = port(&held[0]).unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other = i32::try_from(child.id()).unwrap();
        assert_eq!(listeners(me, &[p]).unwrap(), [Listener::Ours]);
        assert_eq!(listeners(other, &[p]).unwrap(), [Listener::Other]);
        drop(held);
        assert_eq!(listeners(me, &[p]).unwrap(), [Listener::Nobody]);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
