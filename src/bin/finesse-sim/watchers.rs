//! Background rules of the simulated cluster. Today: Finesse's forced logout (reason 255) of
//! an agent whose XMPP presence has been gone from the node they signed in on for
//! `behaviour.forced_logout_after` (60 s in real Finesse).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cluster::{Cluster, lock};

/// How often the rule is checked.
const TICK: Duration = Duration::from_millis(100);

/// Runs the forced-logout rule until `cancel` fires.
pub async fn forced_logout(cluster: Arc<Cluster>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(after) = lock(&cluster.truth).behaviour.forced_logout_after else {
            continue;
        };
        for node in &cluster.nodes {
            // A node that cannot see presence (its XMPP server is down) or is out of service
            // does not act.
            if !node.publisher.is_online() || node.faults().out_of_service {
                continue;
            }
            let gone: Vec<String> = lock(&node.presence)
                .iter()
                .filter(|(_, (available, since))| !available && since.elapsed() >= after)
                .map(|(agent, _)| agent.clone())
                .collect();
            for agent in gone {
                let effects =
                    lock(&cluster.truth).forced_logout(&agent, Some(node.index), SystemTime::now());
                if !effects.is_empty() {
                    info!(%agent, node = %node.name, "forced logout (reason 255): presence gone");
                    cluster.notify(&effects, "");
                }
            }
        }
    }
}
