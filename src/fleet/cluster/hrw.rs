//! Which host should own an agent: weighted rendezvous (highest random weight) hashing of the
//! agent's id over the live members. Every host computes the same answer from the same member
//! list, with no coordination; a member that leaves gives up only its own agents, spread over
//! the others in proportion to their weights, and a member that joins takes about its share
//! and nothing else. The hash is SHA-256 (stable across builds and versions, so that hosts in
//! the middle of a rolling upgrade agree), and a member's score is `-weight / ln(h)` for the
//! hash `h` of (agent, member) mapped into (0, 1]: the weighted form of Thaler and Ravishankar's
//! rendezvous hashing (Schindelhauer and Schomaker's logarithmic method), which gives each
//! member exactly its weight's share in expectation.

use std::cmp::Ordering;

/// A live member: its name (unique in the cluster) and its relative capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The host's name (`[cluster] member`).
    pub name: String,
    /// Its relative capacity (`[cluster] weight`, above zero).
    pub weight: f64,
}

/// The score of `member` (of `weight`) for `agent`; the highest wins.
pub fn score(agent: &str, member: &str, weight: f64) -> f64 {
    let mut input = Vec::with_capacity(agent.len() + member.len() + 1);
    input.extend_from_slice(agent.as_bytes());
    input.push(0);
    input.extend_from_slice(member.as_bytes());
    let digest = crate::tls::sha256(&input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top 53 bits, as a float in (0, 1]: never 0, so the logarithm is finite and negative
    // (or 0 for exactly 1, which scores infinity: that member simply wins).
    let h = ((u64::from_be_bytes(first) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    -weight / h.ln()
}

/// The members in the order `agent` prefers them: the owner first, then whom a handover
/// gives the agent to. Ties (equal scores) are broken by name, so every host agrees.
pub fn ranking<'a>(agent: &str, members: &'a [Member]) -> Vec<&'a Member> {
    let mut scored: Vec<(f64, &Member)> = members
        .iter()
        .filter(|m| m.weight > 0.0)
        .map(|m| (score(agent, &m.name, m.weight), m))
        .collect();
    scored.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.1.name.cmp(&b.1.name))
    });
    scored.into_iter().map(|(_, m)| m).collect()
}

/// The member that should own `agent`, if any member is live.
pub fn owner<'a>(agent: &str, members: &'a [Member]) -> Option<&'a Member> {
    ranking(agent, members).into_iter().next()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn members(spec: &[(&str, f64)]) -> Vec<Member> {
        spec.iter()
            .map(|(n, w)| Member {
                name: (*n).to_owned(),
                weight: *w,
            })
            .collect()
    }

    fn agents(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{}", 1_000_000 + i)).collect()
    }

    fn shares(agents: &[String], members: &[Member]) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for a in agents {
            *out.entry(owner(a, members).unwrap().name.clone())
                .or_default() += 1;
        }
        out
    }

    #[test]
    fn equal_members_share_the_agents_evenly_and_every_host_agrees() {
        let m = members(&[("host-a", 1.0), ("host-b", 1.0), ("host-c", 1.0)]);
        let all = agents(3000);
        let s = shares(&all, &m);
        for (name, n) in &s {
            assert!((900..=1100).contains(n), "{name} owns {n} of 3000: {s:?}");
        }
        // The member list's order does not matter.
        let mut reversed = m.clone();
        reversed.reverse();
        assert_eq!(shares(&all, &reversed), s);
    }

    #[test]
    fn weights_give_proportional_shares() {
        let m = members(&[("big", 2.0), ("small-1", 1.0), ("small-2", 1.0)]);
        let s = shares(&agents(4000), &m);
        assert!((1850..=2150).contains(&s["big"]), "{s:?}");
        assert!((850..=1150).contains(&s["small-1"]), "{s:?}");
    }

    #[test]
    fn a_member_that_leaves_gives_up_only_its_own_agents_and_they_spread() {
        let three = members(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        let two = members(&[("a", 1.0), ("c", 1.0)]);
        let mut moved_to = BTreeMap::<String, usize>::new();
        for agent in agents(3000) {
            let before = owner(&agent, &three).unwrap();
            let after = owner(&agent, &two).unwrap();
            if before.name != "b" {
                assert_eq!(
                    before.name, after.name,
                    "{agent} moved though its owner stayed"
                );
            } else {
                *moved_to.entry(after.name.clone()).or_default() += 1;
                // The next choice in the ranking is where it goes: what a handover uses.
                assert_eq!(ranking(&agent, &three)[1].name, after.name);
            }
        }
        let (a, c) = (moved_to["a"], moved_to["c"]);
        assert!(
            a.abs_diff(c) < (a + c) / 5,
            "b's agents spread: {moved_to:?}"
        );
    }

    #[test]
    fn a_member_that_joins_takes_about_its_share_and_nothing_moves_elsewhere() {
        let three = members(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        let four = members(&[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0)]);
        let all = agents(4000);
        let mut moved = 0;
        for agent in &all {
            let before = owner(agent, &three).unwrap();
            let after = owner(agent, &four).unwrap();
            if before.name != after.name {
                assert_eq!(after.name, "d", "{agent} moved between old members");
                moved += 1;
            }
        }
        assert!(
            (850..=1150).contains(&moved),
            "{moved} of 4000 moved to the fourth"
        );
    }

    #[test]
    fn no_live_member_owns_nothing_and_a_zero_weight_owns_nothing() {
        assert!(owner("1001001", &[]).is_none());
        let m = members(&[("drained", 0.0), ("live", 1.0)]);
        assert_eq!(owner("1001001", &m).unwrap().name, "live");
        // Stable: the same answer every time.
        assert_eq!(score("1001001", "live", 1.0), score("1001001", "live", 1.0));
    }
}
