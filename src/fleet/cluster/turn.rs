//! One round of a host's ownership work, run by the fleet every second while the host may
//! act: read the members and the owners from etcd, [`plan`] what to do, claim the free
//! agents hashing gives this host and release those no file names any more. What this host
//! owns afterwards is the set of agents it runs; the hand-overs are the fleet's to do (stop
//! the agent here, then release its key: [`Store::release`]), each once the member it goes to
//! says it is ready for it, and so is saying which awaited agents this host is ready for.

use std::collections::BTreeMap;

use super::hrw::Member;
use super::plan::plan;
use super::store::{Ownership, Store, StoreError};

/// What one round found and did.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// The live members.
    pub members: Vec<Member>,
    /// Every agent's owner, after this round's claims and releases.
    pub owners: BTreeMap<String, Ownership>,
    /// What this host owns now: agent -> the ownership's revision.
    pub owned: BTreeMap<String, i64>,
    /// The agents claimed in this round.
    pub claimed: Vec<String>,
    /// Agents this host owns that another member should own: (agent, that member).
    pub hand_over: Vec<(String, String)>,
    /// Agents another member owns that should be this host's.
    pub awaiting: Vec<String>,
    /// Which member says it is ready for which agent.
    pub ready: BTreeMap<String, String>,
}

impl Turn {
    /// The agents to hand over now: those whose next owner says it is ready for them.
    pub fn ready_to_hand_over(&self) -> impl Iterator<Item = &str> {
        self.hand_over
            .iter()
            .filter(|(agent, to)| self.ready.get(agent) == Some(to))
            .map(|(agent, _)| agent.as_str())
    }
}

/// Runs one round for the `agents` of the shared directory, claiming only when `may_claim`.
pub async fn turn(
    store: &mut Store,
    agents: &[String],
    may_claim: bool,
) -> Result<Turn, StoreError> {
    let members = store.members().await?;
    let mut owners = store.owners().await?;
    let me = store.member().to_owned();
    let p = plan(&me, &members, &owners, agents, may_claim);
    let ready = if p.hand_over.is_empty() {
        BTreeMap::new()
    } else {
        store.ready().await?
    };
    let won = if p.claim.is_empty() {
        BTreeMap::new()
    } else {
        store.claim(&p.claim).await?
    };
    if !p.release.is_empty() {
        store.release(&p.release).await?;
    }
    for agent in &p.release {
        owners.remove(agent);
    }
    for (agent, revision) in &won {
        owners.insert(
            agent.clone(),
            Ownership {
                member: me.clone(),
                revision: *revision,
            },
        );
    }
    let owned = owners
        .iter()
        .filter(|(_, o)| o.member == me)
        .map(|(a, o)| (a.clone(), o.revision))
        .collect();
    Ok(Turn {
        members,
        owners,
        owned,
        claimed: won.into_keys().collect(),
        hand_over: p.hand_over,
        awaiting: p.awaiting,
        ready,
    })
}
