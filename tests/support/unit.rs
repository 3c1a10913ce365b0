//! systemd units as `systemd-analyze security --offline` scores them.

use std::process::Command;

/// The overall exposure score of `unit` (lower is safer) and the line that gives it.
pub fn exposure(unit: &str) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", unit])
        .output()
        .expect("systemd-analyze must be installed (scripts/install-deps.sh installs the systemd package)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in: {text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("score");
    (score, line.to_owned())
}
