//! What one host should do about ownership, decided from what etcd says and nothing else:
//! which agents to claim, which to hand over (and to whom), which to give up. Pure, so that
//! the rules are tested without etcd:
//!
//! - an agent another member owns is never touched (never two owners): when that member
//!   dies, its key goes with its lease, and only then is the agent free;
//! - a free agent is claimed by the member that rendezvous hashing names among the live
//!   members (only while claiming is allowed: not without a quorum under `keep`);
//! - an agent this host owns but that hashing now gives to another live member (a member
//!   joined) is handed over to that member, once that member says it is ready for it;
//! - an agent another member owns that hashing gives this host (it joined, or the owner is
//!   leaving) is awaited: this host says it is ready for it when it can log it in at once;
//! - an agent this host owns whose file is gone from the agents directory is released.

use std::collections::{BTreeMap, BTreeSet};

use super::hrw::{self, Member};
use super::store::Ownership;

/// The decisions for one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Free agents this host should claim.
    pub claim: Vec<String>,
    /// Agents this host owns that should move: (agent, the member that should own it).
    pub hand_over: Vec<(String, String)>,
    /// Agents another member owns that should be this host's (handed over when it is ready).
    pub awaiting: Vec<String>,
    /// Agents this host owns that no file names any more.
    pub release: Vec<String>,
    /// Agents this host owns and keeps running.
    pub keep: Vec<String>,
}

/// The plan of member `me`, given the live `members`, the `owners` etcd holds and the
/// `agents` of the shared directory. `may_claim` is false while this host must not take new
/// agents (etcd without a quorum, under `on_quorum_loss = "keep"`).
pub fn plan(
    me: &str,
    members: &[Member],
    owners: &BTreeMap<String, Ownership>,
    agents: &[String],
    may_claim: bool,
) -> Plan {
    let mut out = Plan::default();
    let named: BTreeSet<&str> = agents.iter().map(String::as_str).collect();
    for agent in agents {
        let should = hrw::owner(agent, members).map(|m| m.name.as_str());
        match owners.get(agent) {
            Some(o) if o.member == me => match should {
                Some(other) if other != me => {
                    out.hand_over.push((agent.clone(), other.to_owned()));
                }
                _ => out.keep.push(agent.clone()),
            },
            Some(_) if may_claim && should == Some(me) => out.awaiting.push(agent.clone()),
            Some(_) => {}
            None if may_claim && should == Some(me) => out.claim.push(agent.clone()),
            None => {}
        }
    }
    for (agent, o) in owners {
        if o.member == me && !named.contains(agent.as_str()) {
            out.release.push(agent.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<Member> {
        names
            .iter()
            .map(|n| Member {
                name: (*n).to_owned(),
                weight: 1.0,
            })
            .collect()
    }

    fn agents(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{}", 2_000_000 + i)).collect()
    }

    /// What etcd holds after each member claimed its plan's agents.
    fn claimed(plans: &[(&str, &Plan)]) -> BTreeMap<String, Ownership> {
        let mut owners = BTreeMap::new();
        for (member, p) in plans {
            for (i, a) in p.claim.iter().enumerate() {
                let o = Ownership {
                    member: (*member).to_owned(),
                    revision: i as i64 + 1,
                };
                assert!(owners.insert(a.clone(), o).is_none(), "{a} claimed twice");
            }
        }
        owners
    }

    #[test]
    fn on_an_empty_cluster_the_members_claim_every_agent_once_between_them() {
        let m = members(&["a", "b", "c"]);
        let all = agents(900);
        let none = BTreeMap::new();
        let plans: Vec<(&str, Plan)> = ["a", "b", "c"]
            .iter()
            .map(|me| (*me, plan(me, &m, &none, &all, true)))
            .collect();
        let refs: Vec<(&str, &Plan)> = plans.iter().map(|(n, p)| (*n, p)).collect();
        let owners = claimed(&refs);
        assert_eq!(owners.len(), all.len());
        for (_, p) in &plans {
            assert!(p.hand_over.is_empty() && p.release.is_empty() && p.keep.is_empty());
        }
        // Steady: every member keeps what it owns, and claims nothing more.
        for me in ["a", "b", "c"] {
            let p = plan(me, &m, &owners, &all, true);
            assert!(p.claim.is_empty() && p.hand_over.is_empty());
            assert_eq!(
                p.keep.len(),
                owners.values().filter(|o| o.member == me).count()
            );
        }
    }

    #[test]
    fn a_dead_members_agents_are_claimed_by_the_survivors_only_once_its_keys_are_gone() {
        let three = members(&["a", "b", "c"]);
        let all = agents(600);
        let none = BTreeMap::new();
        let pa = plan("a", &three, &none, &all, true);
        let pb = plan("b", &three, &none, &all, true);
        let pc = plan("c", &three, &none, &all, true);
        let mut owners = claimed(&[("a", &pa), ("b", &pb), ("c", &pc)]);
        let two = members(&["a", "c"]);
        // b's lease has not expired yet: its keys stand, and nobody touches its agents (a
        // member that left on purpose hands them over to those that await them).
        let early_a = plan("a", &two, &owners, &all, true);
        assert!(early_a.claim.iter().all(|x| !pb.claim.contains(x)));
        assert!(early_a.awaiting.iter().all(|x| pb.claim.contains(x)));
        // Its lease expired: its keys are gone, and a and c claim exactly its agents.
        owners.retain(|_, o| o.member != "b");
        let qa = plan("a", &two, &owners, &all, true);
        let qc = plan("c", &two, &owners, &all, true);
        let mut taken: Vec<String> = qa.claim.iter().chain(&qc.claim).cloned().collect();
        taken.sort();
        let mut lost = pb.claim.clone();
        lost.sort();
        assert_eq!(taken, lost);
        assert!(
            !qa.claim.is_empty() && !qc.claim.is_empty(),
            "spread over both"
        );
        assert!(qa.hand_over.is_empty() && qc.hand_over.is_empty());
    }

    #[test]
    fn a_member_that_joins_is_handed_about_its_share_and_claims_nothing_owned() {
        let three = members(&["a", "b", "c"]);
        let all = agents(800);
        let none = BTreeMap::new();
        let pa = plan("a", &three, &none, &all, true);
        let pb = plan("b", &three, &none, &all, true);
        let pc = plan("c", &three, &none, &all, true);
        let owners = claimed(&[("a", &pa), ("b", &pb), ("c", &pc)]);
        let four = members(&["a", "b", "c", "d"]);
        let pd = plan("d", &four, &owners, &all, true);
        assert!(pd.claim.is_empty(), "everything is owned");
        let mut moved = 0;
        let mut handed = Vec::new();
        for me in ["a", "b", "c"] {
            let p = plan(me, &four, &owners, &all, true);
            assert!(p.hand_over.iter().all(|(_, to)| to == "d"));
            assert!(p.awaiting.is_empty(), "{me} awaits nothing");
            moved += p.hand_over.len();
            handed.extend(p.hand_over.into_iter().map(|(a, _)| a));
        }
        // What the others hand over is exactly what the new member awaits.
        handed.sort();
        let mut awaited = pd.awaiting.clone();
        awaited.sort();
        assert_eq!(handed, awaited);
        // A member that may not claim awaits nothing either.
        assert!(plan("d", &four, &owners, &all, false).awaiting.is_empty());
        assert!(
            (150..=250).contains(&moved),
            "{moved} of 800 handed to the fourth"
        );
    }

    #[test]
    fn without_leave_to_claim_nothing_is_claimed_and_a_removed_file_is_released() {
        let m = members(&["a"]);
        let all = agents(10);
        let p = plan("a", &m, &BTreeMap::new(), &all, false);
        assert!(p.claim.is_empty());
        let mut owners = BTreeMap::new();
        owners.insert(
            "9999999".to_owned(),
            Ownership {
                member: "a".into(),
                revision: 7,
            },
        );
        let p = plan("a", &m, &owners, &all, true);
        assert_eq!(p.release, vec!["9999999".to_owned()]);
        assert_eq!(p.claim.len(), 10);
    }
}
