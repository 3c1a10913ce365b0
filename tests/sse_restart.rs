//! The event stream across a restart: sequence numbers start again at 1 in a new run, so an
//! event id carries the run (`<boot>-<seq>`) and a client resuming with an id from the old
//! run, or one ahead of the newest event, is told to refetch the state instead of being
//! silently given nothing.

mod support;

use std::time::Duration;

use support::Sim;
use support::daemon::{Daemon, DaemonConfig};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_resume_with_an_id_from_before_a_restart_gets_resync_required() {
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let before = d.state().await["lastEventId"]
        .as_str()
        .expect("lastEventId is a string")
        .to_owned();
    let seq: u64 = before.rsplit('-').next().unwrap().parse().unwrap();
    assert!(seq > 0, "{before}");
    drop(d);
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    let now = d.state().await;
    let mut stale = d.events_from(Some(&before)).await;
    let first = tokio::time::timeout(LIMIT, stale.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["type"], "resync.required", "{first}");
    // One ahead of the newest event (a client that saw a later run) is no better.
    let ahead = format!(
        "{}-{}",
        now["lastEventId"]
            .as_str()
            .unwrap()
            .split_once('-')
            .unwrap()
            .0,
        now["lastSeq"].as_u64().unwrap() + 5
    );
    let mut future = d.events_from(Some(&ahead)).await;
    let first = tokio::time::timeout(LIMIT, future.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["type"], "resync.required", "{first}");
}
