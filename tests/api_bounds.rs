//! The local API's bounds with a real daemon. Under systemd's default soft limit of 1,024
//! file descriptors, 1,100 idle local connections used to take every descriptor, and the next
//! failover could not open a socket to Finesse. With `[api] max_connections` (256 by default)
//! the extra connections wait in the kernel's backlog, and the failover goes through while
//! they are held. (The write and header-read timeouts are tested on the server itself in
//! `src/api/serve.rs`.)

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{Daemon, DaemonConfig};
use support::{Sim, dialog_ids};

const LIMIT: Duration = Duration::from_secs(30);
const IDLE: usize = 1_100;

/// This test process needs more than `IDLE` descriptors itself.
fn raise_own_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    assert!(
        hard >= 4 * IDLE as u64,
        "the hard file-descriptor limit ({hard}) is too low for this test; raise it (ulimit -Hn)"
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc")
        .count()
}

#[tokio::test]
async fn eleven_hundred_idle_local_connections_do_not_stop_a_failover() {
    raise_own_limit();
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            nofile: Some(1024),
            // Only the connection cap protects the descriptors here.
            api_extra: "header_read_timeout = \"10m\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let offered = sim.offer(json!({})).await;
    d.wait_dialog(&offered).await;
    let addr = d.api.trim_start_matches("http://").to_owned();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let s = tokio::time::timeout(LIMIT, tokio::net::TcpStream::connect(&addr))
            .await
            .unwrap_or_else(|_| panic!("connection {i} not even queued"))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        idle.push(s);
    }
    let pid = d.child.id().expect("pid");
    // Let the daemon accept all it will.
    sim.eventually(LIMIT, "the daemon accepted up to its cap", || async {
        open_fds(pid) > 256
    })
    .await;
    let held = open_fds(pid);
    println!("{IDLE} idle connections: the daemon holds {held} descriptors of 1024");
    assert!(held < 256 + 64, "{held} descriptors: the cap did not hold");

    sim.faults("A", json!({ "rest": "refused" })).await;
    sim.prosody("A", "kill").await;
    sim.eventually(
        LIMIT,
        "signed in on B with the idle connections held",
        || async { sim.media_truth().await["loginNode"] == "B" },
    )
    .await;
    assert_eq!(idle.len(), IDLE, "still held during the failover");
    drop(idle);
    let s = d
        .wait_state(LIMIT, "steady on B", |s| {
            s["phase"] == "steady" && s["node"] == sim.node("B").rest.as_str()
        })
        .await;
    assert_eq!(dialog_ids(&s), sim.truth_dialog_ids().await);
}
