//! Fleet mode's configuration: one fleet file with the tables every agent shares
//! (`[finesse]`, `[xmpp]`, `[recovery]`, `[api]`, `[log]`, `[sso]`) and `[fleet]`, and a
//! directory of agent files, each with one agent's `[agent]`, `[[media]]` and optional
//! `[shutdown]`. An agent's configuration is its file followed by the shared tables, validated
//! exactly as a single-agent file (errors name the agent file; line numbers are the agent
//! file's). A table in the wrong file is an error that says where it belongs. `[cluster]`
//! (see [`super::cluster`]) is the fleet file's alone.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Config, ConfigError};

use super::caps::Rates;
use super::cluster::config::ClusterConfig;

fn err(file: &Path, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(file, key, message)
}

/// The tables an agent file holds; all others belong in the fleet file.
const AGENT_TABLES: [&str; 3] = ["agent", "media", "shutdown"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    agents_dir: PathBuf,
    #[serde(default = "d_logins")]
    max_logins_per_second: f64,
    #[serde(default = "d_requests")]
    max_requests_per_second: f64,
    max_logins_in_flight: Option<usize>,
    #[serde(default = "d_ratio")]
    ready_ratio: f64,
    state_dir: Option<PathBuf>,
}

fn d_logins() -> f64 {
    10.0
}
/// `max_logins_in_flight` when none is set: in effect no bound.
const UNBOUNDED_IN_FLIGHT: usize = 10_000;

fn d_requests() -> f64 {
    50.0
}
fn d_ratio() -> f64 {
    1.0
}

/// The validated fleet file.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The fleet file.
    pub source: PathBuf,
    /// Where the agent files are (`*.toml`).
    pub agents_dir: PathBuf,
    /// XMPP logins and Media sign-ins per second, for the whole fleet.
    pub max_logins_per_second: f64,
    /// REST requests per second, for the whole fleet.
    pub max_requests_per_second: f64,
    /// XMPP logins and sign-ins waiting for their answer at once, for the whole fleet.
    pub max_logins_in_flight: usize,
    /// `/readyz` is ready when at least this fraction of the agents is steady.
    pub ready_ratio: f64,
    /// Each agent's state directory is `<state_dir>/<agent id>` unless its file sets one
    /// (`[fleet] state_dir`, else systemd's `$STATE_DIRECTORY`).
    pub state_dir: Option<PathBuf>,
    /// The shared settings as an agent gets them: the API listener, its limits and guard,
    /// the log format (from a validation with a placeholder agent).
    pub base: Config,
    /// `[cluster]`: the hosts that share the agents directory, and the etcd that decides
    /// which runs which agent (none: this host runs every agent, as without a cluster).
    pub cluster: Option<ClusterConfig>,
    shared: String,
}

/// A placeholder agent that makes the shared tables a whole config, for their validation.
const PLACEHOLDER: &str = "[agent]\nid = \"fleet\"\npassword = \"placeholder\"\n\
    [[media]]\nid = 1\nmax_dialog_limit = 1\ninterrupt_action = \"ACCEPT\"\n";

fn table(file: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| err(file, "(toml)", e.message().to_owned()))
}

impl FleetConfig {
    /// Reads and validates the fleet file (not the agent files: see [`Self::agent_files`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path, "(file)", e.to_string()))?;
        let mut all = table(path, &text)?;
        let fleet = all
            .remove("fleet")
            .ok_or_else(|| err(path, "fleet", "missing: a fleet file has a [fleet] table"))?;
        for key in AGENT_TABLES {
            if all.contains_key(key) {
                return Err(err(
                    path,
                    key,
                    "belongs in an agent file in [fleet] agents_dir, not the fleet file",
                ));
            }
        }
        let cluster = all
            .remove("cluster")
            .map(|t| ClusterConfig::parse(path, t))
            .transpose()?;
        let raw: RawFleet = fleet
            .try_into()
            .map_err(|e: toml::de::Error| err(path, "fleet", e.message().to_owned()))?;
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(err(
                    path,
                    format!("fleet.{key}"),
                    format!("{v} must be above zero"),
                ))
            }
        };
        positive("max_logins_per_second", raw.max_logins_per_second)?;
        positive("max_requests_per_second", raw.max_requests_per_second)?;
        // Default: no bound (a bound measured no faster at 2,000 agents: benches/RESULTS.md).
        let in_flight = raw.max_logins_in_flight.unwrap_or(UNBOUNDED_IN_FLIGHT);
        if in_flight == 0 || in_flight > UNBOUNDED_IN_FLIGHT {
            return Err(err(
                path,
                "fleet.max_logins_in_flight",
                format!("{in_flight} is out of range 1..=10000"),
            ));
        }
        if !(0.0..=1.0).contains(&raw.ready_ratio) {
            return Err(err(
                path,
                "fleet.ready_ratio",
                format!("{} is out of range 0..=1", raw.ready_ratio),
            ));
        }
        let shared = toml::to_string(&all).map_err(|e| err(path, "(toml)", e.to_string()))?;
        let mut base = Config::parse(path, &format!("{PLACEHOLDER}\n{shared}"))?;
        base.warnings.retain(|w| !w.starts_with("agent."));
        let here = path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            source: path.to_path_buf(),
            agents_dir: here.join(raw.agents_dir),
            max_logins_per_second: raw.max_logins_per_second,
            max_requests_per_second: raw.max_requests_per_second,
            max_logins_in_flight: in_flight,
            ready_ratio: raw.ready_ratio,
            state_dir: raw.state_dir.map(|d| here.join(d)).or_else(|| {
                std::env::var_os("STATE_DIRECTORY").and_then(|v| std::env::split_paths(&v).next())
            }),
            base,
            cluster,
            shared,
        })
    }

    /// The caps' rates.
    pub fn rates(&self) -> Rates {
        Rates {
            logins: self.max_logins_per_second,
            requests: self.max_requests_per_second,
            in_flight: self.max_logins_in_flight,
        }
    }

    /// The shared tables as every agent gets them (a change reloads every agent).
    pub fn shared_text(&self) -> &str {
        &self.shared
    }

    /// The agent files (`*.toml` in `agents_dir`), sorted.
    pub fn agent_files(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let entries = std::fs::read_dir(&self.agents_dir).map_err(|e| {
            err(
                &self.source,
                "fleet.agents_dir",
                format!("{}: {e}", self.agents_dir.display()),
            )
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        Ok(files)
    }

    /// One agent's configuration: its file followed by the shared tables.
    pub fn load_agent(&self, file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| err(file, "(file)", e.to_string()))?;
        let own = table(file, &text)?;
        if let Some(key) = own.keys().find(|k| !AGENT_TABLES.contains(&k.as_str())) {
            return Err(err(
                file,
                key.as_str(),
                format!(
                    "belongs in the fleet file {}, not an agent file",
                    self.source.display()
                ),
            ));
        }
        let mut cfg = Config::parse(file, &format!("{text}\n{}", self.shared))?;
        let own_dir = own.get("agent").and_then(|a| a.get("state_dir")).is_some();
        if !own_dir {
            cfg.state_dir = self.state_dir.as_ref().map(|d| d.join(&cfg.agent_id));
        }
        Ok(cfg)
    }
}

/// What `check-config` says of a fleet's agent files.
#[derive(Debug)]
pub struct CheckReport {
    /// One line per agent file: valid (with its agent), or its error.
    pub lines: Vec<Result<String, ConfigError>>,
    /// The count of files and of invalid ones.
    pub summary: String,
    /// Every file is valid.
    pub ok: bool,
}

impl FleetConfig {
    /// Validates every agent file (the directory itself unreadable is one error).
    pub fn check_agents(&self) -> CheckReport {
        let files = match self.agent_files() {
            Ok(f) => f,
            Err(e) => {
                return CheckReport {
                    summary: format!("{}: agents directory unreadable", self.source.display()),
                    lines: vec![Err(e)],
                    ok: false,
                };
            }
        };
        let lines: Vec<_> = files
            .iter()
            .map(|file| {
                self.load_agent(file)
                    .map(|a| format!("{}: valid (agent {})", file.display(), a.agent_id))
            })
            .collect();
        let bad = lines.iter().filter(|l| l.is_err()).count();
        CheckReport {
            summary: format!(
                "{}: {} agent files, {bad} invalid",
                self.source.display(),
                files.len()
            ),
            lines,
            ok: bad == 0,
        }
    }
}

/// True when `path` is a fleet file (it has a `[fleet]` table).
pub fn is_fleet_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("fleet"))
}
