//! What the explicit recovery machine fixed, against the simulator and a real Prosody: a
//! `finesse` UNAVAILABLE seen while the session is being set up is acted on, a periodic
//! resync does not count in `time_to_ready`, and a slow but healthy node keeps the systemd
//! watchdog fed (each REST answer of a resync counts as progress).

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{Daemon, DaemonConfig};
use support::{Sim, metric};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn finesse_unavailable_seen_while_the_session_is_set_up_is_acted_on() {
    let sim = Sim::start(&[]).await;
    // The publisher is online but unavailable: Prosody answers the agent's presence probe
    // with an unavailable presence while the daemon is still subscribing.
    sim.faults("A", json!({ "finesse_unavailable": true }))
        .await;
    let d = Daemon::start(&sim, DaemonConfig::default()).await;
    let series = "finesse_taskd_reconnects_total{link=\"node\",cause=\"finesse_unavailable\"}";
    let deadline = tokio::time::Instant::now() + LIMIT;
    while metric(&d.metrics().await, series).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon never waited for finesse; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It waited before its first resync, not after it.
    d.wait_log("resync completed").await;
    let log = d.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let waited = lines.iter().position(|l| {
        l["fields"]["message"] == "phase" && l["fields"]["cause"] == "finesse_unavailable"
    });
    let resynced = lines
        .iter()
        .position(|l| l["fields"]["message"] == "resync completed");
    assert!(
        waited.is_some() && waited < resynced,
        "waited at line {waited:?}, first resync at {resynced:?}"
    );
    sim.faults("A", json!({ "finesse_unavailable": false }))
        .await;
    d.wait_steady(LIMIT).await;
}

#[tokio::test]
async fn a_periodic_resync_does_not_count_in_time_to_ready() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            resync_every: "300ms",
            ..Default::default()
        },
    )
    .await;
    d.wait_state(LIMIT, "four resyncs", |s| {
        s["counters"]["resyncs"].as_u64() >= Some(4) && s["phase"] == "steady"
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "finesse_taskd_time_to_ready_seconds_count"),
        Some(0.0),
        "periodic resyncs are not failures: {m}"
    );
    // A real failure still counts, once.
    d.blip_out_of_service(&sim).await;
    d.wait_state(LIMIT, "steady after the blip", |s| {
        s["phase"] == "steady" && s["cause"].is_null()
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "finesse_taskd_time_to_ready_seconds_count"),
        Some(1.0),
        "{m}"
    );
}

/// A simulator configuration whose agent has three MRDs.
fn three_mrds(dir: &std::path::Path) -> std::path::PathBuf {
    let base = std::fs::read_to_string(support::sim_config()).unwrap();
    let three = base
        .replace(
            "[[agents]]\nid = \"1001001\"",
            "[[mrds]]\nid = 5004\nname = \"Social_MRD\"\ninterruptible = true\nqueue_name = \"Social.SG\"\n\n[[agents]]\nid = \"1001001\"",
        )
        .replace("mrds = [5002, 5003]", "mrds = [5002, 5003, 5004]");
    assert!(three.contains("5004]"), "the agent got a third MRD");
    let path = dir.join("sim.toml");
    std::fs::write(&path, three).unwrap();
    path
}

#[tokio::test]
async fn a_slow_but_healthy_node_keeps_the_watchdog_fed_through_long_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_with(three_mrds(dir.path()), &["--spawn-prosody"]).await;
    let sock_path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let media: String = [5002, 5003, 5004]
        .iter()
        .map(|id| format!("[[media]]\nid = {id}\nmax_dialog_limit = 2\ninterrupt_action = \"ACCEPT\"\nstate = \"READY\"\n"))
        .collect();
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            media,
            resync_every: "1s",
            env: vec![
                ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
                ("WATCHDOG_USEC".into(), "2000000".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    // From now on every REST answer takes 500 ms: a periodic resync of three MRDs (a Media
    // GET and a Dialog LIST each) takes 3 s, longer than the 2 s watchdog, while no single
    // step comes near it.
    sim.faults("A", json!({ "delay_ms": 500 })).await;
    let resyncs_before = d.state().await["counters"]["resyncs"].as_u64().unwrap();
    let watchdog = Duration::from_secs(2);
    let mut buf = vec![0u8; 4096];
    while sock.try_recv(&mut buf).is_ok() {}
    let start = tokio::time::Instant::now();
    let until = start + Duration::from_secs(10);
    let mut last_ping = start;
    let mut longest = Duration::ZERO;
    let mut pings = 0;
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
        if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
            let now = tokio::time::Instant::now();
            longest = longest.max(now - last_ping);
            last_ping = now;
            pings += 1;
        }
    }
    longest = longest.max(until - last_ping);
    let resyncs = d.state().await["counters"]["resyncs"].as_u64().unwrap() - resyncs_before;
    println!("{resyncs} slow resyncs in 10 s; {pings} watchdog pings, longest gap {longest:?}");
    assert!(resyncs >= 2, "the slow resyncs ran ({resyncs})");
    assert!(
        longest < watchdog,
        "a gap of {longest:?} between watchdog pings would let systemd kill a working daemon"
    );
    assert_eq!(
        d.state().await["counters"]["reconnects"],
        0,
        "slow is not down"
    );
}
