//! Against a second XMPP server, Debian's stock ejabberd 23.01, which offers SCRAM `-PLUS`
//! mechanisms and refuses the TLS 1.3 exporter channel binding this client computes: the
//! daemon logs in without channel binding after one refusal (and remembers it), can be told
//! its SASL mechanism, and with `channel_binding = "required"` does not fall back. The
//! recovery scenarios of `daemon_recovery.rs` also run against ejabberd in `scripts/test.sh`
//! (`FINESSE_TEST_XMPP_SERVER=ejabberd`).

mod support;

use std::time::Duration;

use support::Sim;
use support::daemon::{Daemon, DaemonConfig};

const LIMIT: Duration = Duration::from_secs(30);
const FALLBACK: &str = "the server refused the login with channel binding; trying once without it";

/// A simulator whose nodes run ejabberd, one test at a time: six Erlang VMs starting at
/// once on two shared cores took more than the simulator's 20 s to open their ports (CI).
async fn ejabberd() -> (tokio::sync::MutexGuard<'static, ()>, Sim) {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let one = ONE.lock().await;
    let sim = Sim::start_with(
        support::sim_config(),
        &["--spawn-prosody", "--xmpp-server", "ejabberd"],
    )
    .await;
    (one, sim)
}

#[tokio::test]
async fn a_refused_channel_binding_falls_back_once_and_is_remembered_across_reconnects() {
    let (_one, sim) = ejabberd().await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    assert_eq!(d.log_count(FALLBACK), 1);
    assert_eq!(d.state().await["counters"]["signins"], 1);
    // The server restarts: the next login goes without channel binding at once.
    sim.prosody("A", "restart").await;
    d.wait_state(LIMIT, "reconnected", |s| {
        s["phase"] == "steady" && s["counters"]["reconnects"] == 1
    })
    .await;
    assert_eq!(
        d.log_count(FALLBACK),
        1,
        "no second try with channel binding"
    );
    assert!(
        !d.log().contains("NotAuthorized"),
        "no login refused while the server restarted"
    );
}

#[tokio::test]
async fn a_configured_mechanism_is_used_without_any_fallback() {
    let (_one, sim) = ejabberd().await;
    let d = Daemon::start_steady(
        &sim,
        DaemonConfig {
            xmpp_extra: "sasl_mechanisms = [\"PLAIN\"]\n".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(d.log_count(FALLBACK), 0);
    assert_eq!(d.log_count("XMPP login failed"), 0);
}

#[tokio::test]
async fn with_channel_binding_required_there_is_no_fallback() {
    let (_one, sim) = ejabberd().await;
    let d = Daemon::start(
        &sim,
        DaemonConfig {
            xmpp_extra: "channel_binding = \"required\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    d.wait_state(LIMIT, "refused", |s| s["phase"] == "auth_failed")
        .await;
    assert_eq!(d.log_count(FALLBACK), 0);
}
