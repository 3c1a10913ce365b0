//! Merges the OpenMetrics text of each agent of a fleet into one exposition: each family's
//! `# HELP`/`# TYPE`/`# UNIT` once, then every agent's samples of it with an `agent` label
//! added, the families in the order the first agent renders them; then the fleet's own
//! families and one `# EOF`. Pure text; each agent keeps rendering its own metrics.

use std::collections::BTreeMap;

/// A family: its metadata lines and, per agent, its samples.
#[derive(Default)]
struct Family {
    meta: Vec<String>,
    samples: Vec<String>,
}

/// The family a sample line belongs to, given the family names seen (a counter's samples are
/// `<name>_total`, a histogram's `<name>_bucket` and so on).
fn name_of(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

fn with_agent(line: &str, agent: &str) -> String {
    let name = name_of(line);
    let rest = &line[name.len()..];
    let agent = agent.replace('\\', "\\\\").replace('"', "\\\"");
    match rest.strip_prefix('{') {
        Some(labels) => format!("{name}{{agent=\"{agent}\",{labels}"),
        None => format!("{name}{{agent=\"{agent}\"}}{rest}"),
    }
}

/// One exposition from `(agent, text)` parts and the fleet's own families (`extra`).
pub fn merge(parts: &[(String, String)], extra: &str) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (agent, text) in parts {
        let mut current = String::new();
        for line in text.lines() {
            if line == "# EOF" || line.is_empty() {
                continue;
            }
            if let Some(meta) = line.strip_prefix("# ") {
                let mut words = meta.split_whitespace();
                let (_, name) = (words.next(), words.next().unwrap_or(""));
                current = name.to_owned();
                let family = families.entry(current.clone()).or_insert_with(|| {
                    order.push(current.clone());
                    Family::default()
                });
                if !family.meta.iter().any(|m| m == line) {
                    family.meta.push(line.to_owned());
                }
                continue;
            }
            let family = families.entry(current.clone()).or_insert_with(|| {
                order.push(current.clone());
                Family::default()
            });
            family.samples.push(with_agent(line, agent));
        }
    }
    let mut out = String::new();
    for name in &order {
        if let Some(f) = families.get(name) {
            for line in f.meta.iter().chain(&f.samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(extra);
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n\
        # HELP up Links.\n# TYPE up gauge\nup{link=\"rest\"} 1\n# EOF\n";

    #[test]
    fn each_family_is_written_once_with_every_agents_samples_labelled() {
        let two = ONE.replace(" 3", " 5").replace("} 1", "} 0");
        let out = merge(
            &[("1001".into(), ONE.into()), ("1002".into(), two)],
            "# TYPE f gauge\nf 2\n",
        );
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{agent=\"1001\"} 3\n\
             x_total{agent=\"1002\"} 5\n# HELP up Links.\n# TYPE up gauge\n\
             up{agent=\"1001\",link=\"rest\"} 1\nup{agent=\"1002\",link=\"rest\"} 0\n\
             # TYPE f gauge\nf 2\n# EOF\n"
        );
    }
}
