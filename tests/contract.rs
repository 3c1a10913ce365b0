//! The local API as a contract: the OpenAPI documents the code derives are the ones committed
//! in `contrib/` (a change to the API that does not regenerate them fails here), they are
//! valid OpenAPI 3.1 (`openapi-spec-validator`), a running daemon and a running fleet serve
//! them, and Schemathesis, with every check and every phase (stateful included), finds no
//! failure against either, with and without a token. Schemathesis's requests reach the
//! simulator like any other: the guard, the lockout rules and the herd caps stay in force,
//! and the run locks no account (checked at the simulator after each run).
//!
//! The Python tools come from `scripts/install-deps.sh` (a venv at `$FINESSE_TEST_VENV`, by
//! default `~/.cache/finesse-taskd/venv`); a missing tool fails the test.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::Sim;
use support::daemon::{Daemon, DaemonConfig};
use support::fleet::{AGENTS, Fleet};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("FINESSE_TEST_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/finesse-taskd/venv")
        },
        PathBuf::from,
    );
    let tool = venv.join("bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run scripts/install-deps.sh (it makes the venv with Schemathesis and openapi-spec-validator)",
        tool.display()
    );
    tool
}

/// `finesse-taskd openapi [--fleet]`.
fn generated(fleet: bool) -> String {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_finesse-taskd"));
    c.arg("openapi");
    if fleet {
        c.arg("--fleet");
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn committed(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("contrib").join(name)).unwrap()
}

#[test]
fn the_committed_documents_are_the_ones_the_code_derives() {
    for (name, fleet) in [("openapi.json", false), ("openapi-fleet.json", true)] {
        assert!(
            generated(fleet) == committed(name),
            "contrib/{name} differs from what the code derives: run\n  \
             cargo run -q -- openapi{} > contrib/{name}\nand commit it (within /v1 only additions)",
            if fleet { " --fleet" } else { "" }
        );
    }
}

#[test]
fn the_documents_are_valid_openapi_3_1() {
    for name in ["openapi.json", "openapi-fleet.json"] {
        let doc: Value = serde_json::from_str(&committed(name)).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let out = std::process::Command::new(venv_tool("openapi-spec-validator"))
            .arg(Path::new(ROOT).join("contrib").join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs Schemathesis against the API at `base` with its served document, every check and
/// phase; `token` sent when given. Panics with Schemathesis's report on any failure.
async fn schemathesis(base: &str, token: Option<&str>) {
    let report = tempfile::tempdir().unwrap();
    let mut c = tokio::process::Command::new(venv_tool("st"));
    c.args(["run", &format!("{base}/v1/openapi.json")])
        .args(["--url", base])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "30", "--seed", "20261207"])
        .args(["--workers", "1", "--request-timeout", "15"])
        // The event stream does not end: it is a browser's and tests/sse_restart.rs's.
        .args(["--exclude-path-regex", "/events$"])
        .args(["--generation-database", "none", "--no-color"])
        .arg("--report-dir")
        .arg(report.path())
        .current_dir(report.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = tokio::time::timeout(Duration::from_secs(600), c.output())
        .await
        .expect("Schemathesis finished within 10 minutes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "Schemathesis found failures:\n{text}");
    assert!(text.contains("passed"), "{text}");
}

/// No account was locked by the run: the simulator refused no password at all.
async fn no_account_locked(sim: &Sim) {
    let truth = sim.truth().await;
    let refusals = support::refusals_at(&truth);
    assert!(
        refusals.is_empty(),
        "passwords refused during the run: {truth}"
    );
}

/// The document served at `api` is the committed `contrib/{name}`.
async fn serves(http: &reqwest::Client, api: &str, name: &str) {
    let served: Value = http
        .get(format!("{api}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        served,
        serde_json::from_str::<Value>(&committed(name)).unwrap(),
        "{api} serves another document than contrib/{name}"
    );
}

/// A token, in a private file of `dir`.
fn token_file(dir: &Path, token: &str) -> PathBuf {
    let file = dir.join("api.token");
    support::private_file(&file, token);
    file
}

#[tokio::test]
async fn a_single_agent_serves_its_document_and_schemathesis_finds_nothing_with_or_without_a_token()
{
    let sim = Sim::start(&[]).await;
    let d = Daemon::start_steady(&sim, DaemonConfig::default()).await;
    serves(d.http(), &d.api, "openapi.json").await;
    schemathesis(&d.api, None).await;
    no_account_locked(&sim).await;
    drop(d);

    let dir = tempfile::tempdir().unwrap();
    let token = "contract-token-0123456789abcdef";
    let file = token_file(dir.path(), token);
    let cfg = DaemonConfig {
        api_extra: format!("token_file = {:?}\n", file.display().to_string()),
        ..DaemonConfig::default()
    };
    let d = Daemon::start_steady_with_token(&sim, cfg, token).await;
    schemathesis(&d.api, Some(token)).await;
    no_account_locked(&sim).await;
}

/// A fleet of the three agents of `config/sim.toml`, its API behind `token` when given,
/// every agent steady.
async fn steady_fleet(sim: &Sim, token: Option<(&str, &Path)>) -> Fleet {
    let listen = "[api]\nlisten = \"127.0.0.1:0\"";
    let with_token =
        token.map(|(_, file)| format!("{listen}\ntoken_file = {:?}", file.display().to_string()));
    let edits: Vec<(&str, &str)> = with_token.iter().map(|t| (listen, t.as_str())).collect();
    let mut f = Fleet::start_edited(sim, "", &AGENTS, &edits).await;
    if let Some((t, _)) = token {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        f.http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
    }
    f.wait("every agent steady", |v| {
        v["agents"]
            .as_array()
            .is_some_and(|a| a.len() == AGENTS.len() && a.iter().all(|x| x["phase"] == "steady"))
    })
    .await;
    f
}

#[tokio::test]
async fn a_fleet_serves_its_document_and_schemathesis_finds_nothing_with_or_without_a_token() {
    let sim = Sim::start(&[]).await;
    let f = steady_fleet(&sim, None).await;
    serves(&f.http, &f.api, "openapi-fleet.json").await;
    schemathesis(&f.api, None).await;
    no_account_locked(&sim).await;
    drop(f);

    let dir = tempfile::tempdir().unwrap();
    let token = "contract-fleet-token-0123456789abcdef";
    let file = token_file(dir.path(), token);
    let f = steady_fleet(&sim, Some((token, &file))).await;
    let refused = reqwest::get(format!("{}/v1/agents", f.api)).await.unwrap();
    assert_eq!(refused.status(), 401, "the fleet asks for its token");
    schemathesis(&f.api, Some(token)).await;
    no_account_locked(&sim).await;
}
