//! `finesse-sim`: a Cisco Finesse cluster simulator for task-routing clients.
//!
//! It serves the Finesse REST API for one or two nodes (side A and side B) over one shared
//! "CCE truth", publishes Finesse-shaped notifications through a real XMPP server per node
//! (Prosody, spawned with `--spawn-prosody`), and offers a JSON admin API to route tasks and
//! inject faults. On start-up it prints one JSON line with its URLs, ports, domain and CA file.
#![forbid(unsafe_code)]

mod admin;
mod authlog;
mod body;
mod certs;
mod chat;
mod cluster;
mod config;
mod ids;
mod listener;
mod locks;
mod network;
mod ports;
mod prosody;
mod publisher;
mod rest;
mod truth;
mod watchers;
mod xml;
mod xmpp_client;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::jid::Jid;
use tracing::{error, info};

use crate::cluster::{Cluster, Faults, Node};
use crate::config::SimConfig;
use crate::prosody::{Prosody, ProsodySpec};

/// A Cisco Finesse simulator (REST + XMPP notifications through real Prosody) with fault
/// injection, for testing task-routing clients such as finesse-taskd.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The simulator config (agents, MRDs, nodes, behaviour). See config/sim.toml.
    #[arg(long, short)]
    config: PathBuf,
    /// Start one Prosody per node from a temporary directory on free loopback ports.
    /// Without it, the XMPP servers named in the config are used.
    #[arg(long)]
    spawn_prosody: bool,
    /// Let the spawned Prosody offer XEP-0198 stream management (off by default, as Finesse).
    #[arg(long)]
    smacks: bool,
    /// Leave Nagle's algorithm on in the spawned Prosody (its own default). Whether Finesse's
    /// Openfire sets TCP_NODELAY is unknown; with Nagle on, a reply written in two segments
    /// waits for the client's delayed ACK (about 40 ms on Linux).
    #[arg(long)]
    xmpp_nagle: bool,
    /// Allow unencrypted XMPP on the c2s port (loopback tests only).
    #[arg(long)]
    plain_xmpp: bool,
    /// The XMPP server spawned for each node (with --spawn-prosody).
    #[arg(long, value_enum, default_value = "prosody")]
    xmpp_server: prosody::ServerKind,
    /// Single sign-on mode: SystemInfo says SSO, REST takes only Bearer tokens from the
    /// simulated IdS, and each issued token is the agent's XMPP password.
    #[arg(long)]
    sso: bool,
    /// Serve REST over plain HTTP instead of HTTPS (loopback tests only).
    #[arg(long)]
    plain_rest: bool,
    /// Where to write certificates and Prosody state (default: a temporary directory removed
    /// on exit).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Address of the JSON admin API.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin_listen: SocketAddr,
    /// Round trip added between the agents and every node, on every link (half each way),
    /// e.g. `40ms`; replaces `[network]` of the config. Per node and link at run time:
    /// `PUT /admin/nodes/{node}/network/{link}`.
    #[arg(long, value_parser = humantime::parse_duration)]
    rtt: Option<std::time::Duration>,
    /// Jitter each way, e.g. `5ms` (with --rtt; never reorders bytes).
    #[arg(long, value_parser = humantime::parse_duration)]
    jitter: Option<std::time::Duration>,
    /// Bandwidth each way in bytes per second (with --rtt).
    #[arg(long)]
    bandwidth: Option<u64>,
}

impl Cli {
    /// The network every link starts under: the command line's, else the config's.
    fn network(&self, config: &SimConfig) -> network::Conditions {
        if self.rtt.is_none() && self.jitter.is_none() && self.bandwidth.is_none() {
            return config.network;
        }
        network::Conditions::symmetric(
            self.rtt.unwrap_or_default(),
            self.jitter.unwrap_or_default(),
            self.bandwidth.unwrap_or(0),
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tokio_xmpp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match SimConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("finesse-sim: {e:#}");
            return ExitCode::from(78);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("finesse-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("finesse-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: SimConfig) -> anyhow::Result<()> {
    // Before anything can announce readiness: a SIGTERM sent right after the JSON line must
    // reach the handler, not the default action.
    let stop = stop_signal()?;
    let _temp;
    let dir = match &cli.state_dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile::Builder::new().prefix("finesse-sim-").tempdir()?;
            let p = t.path().to_path_buf();
            _temp = t;
            p
        }
    };
    std::fs::create_dir_all(&dir)?;
    let pki = certs::generate(&dir.join("certs"), &config.domain)?;
    let publisher_password = if cli.spawn_prosody {
        format!("pub-{}", std::process::id())
    } else {
        config.publisher.password.clone()
    };
    let ca_pem = match (&config.publisher.ca_file, cli.spawn_prosody) {
        (Some(f), false) => std::fs::read(f).with_context(|| format!("reading {f}"))?,
        _ => std::fs::read(&pki.ca_file)?,
    };
    let client_tls = xmpp_client::trusting(&ca_pem)?;
    if cli.spawn_prosody {
        match cli.xmpp_server {
            prosody::ServerKind::Prosody => prosody::check_installed()?,
            prosody::ServerKind::Ejabberd => prosody::ejabberd::check_installed()?,
        };
    }

    let cancel = CancellationToken::new();
    let mut nodes = Vec::new();
    let mut inboxes = Vec::new();
    let mut listeners = Vec::new();
    for (index, nc) in config.nodes.iter().enumerate() {
        let rest: SocketAddr = nc
            .rest_listen
            .parse()
            .with_context(|| format!("nodes[{index}].rest_listen: {:?}", nc.rest_listen))?;
        let listener = ports::listen(rest)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(TcpListener::from_std(l)?)
            })
            .with_context(|| format!("binding REST listener {rest}"))?;
        let rest_port = listener.local_addr()?.port();
        let prosody = if cli.spawn_prosody {
            let mut accounts: Vec<(String, String)> = config
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.password.clone()))
                .collect();
            accounts.push((config.publisher.user.clone(), publisher_password.clone()));
            let spec = ProsodySpec {
                kind: cli.xmpp_server,
                dir: dir.join(format!("prosody-{}", nc.name)),
                domain: config.domain.clone(),
                c2s_port: 0,
                direct_tls_port: 0,
                websocket_port: 0,
                smacks: cli.smacks,
                nagle: cli.xmpp_nagle,
                plain: cli.plain_xmpp,
                pki: pki.clone(),
                publisher: config.publisher.user.clone(),
                accounts,
            };
            Some(Prosody::launch(spec).await?)
        } else {
            None
        };
        let server_ports = match &prosody {
            Some(p) => (p.spec().c2s_port, p.spec().direct_tls_port),
            None => match (nc.xmpp_port, nc.xmpp_secure_port) {
                (Some(a), Some(b)) => (a, b),
                _ => bail!(
                    "nodes[{index}]: xmpp_port and xmpp_secure_port are required without --spawn-prosody"
                ),
            },
        };
        // The ports the node publishes are the network's: each forwards to the server's own.
        let network = network::Network::new(cli.network(&config));
        let xmpp_host = if cli.spawn_prosody {
            "127.0.0.1"
        } else {
            nc.host.as_str()
        };
        let mut fronts = Vec::new();
        for (held, server_port) in ports::reserve(2)?
            .into_iter()
            .zip([server_ports.0, server_ports.1])
        {
            held.set_nonblocking(true)?;
            let port = ports::port(&held)?;
            let upstream = tokio::net::lookup_host((xmpp_host, server_port))
                .await?
                .next()
                .context("XMPP host has no address")?;
            tokio::spawn(network::forward(
                TcpListener::from_std(held)?,
                upstream,
                network.watch(network::Link::Xmpp),
                cancel.clone(),
            ));
            fronts.push(port);
        }
        let (xmpp_port, xmpp_secure_port) = (fronts[0], fronts[1]);
        let scheme = if cli.plain_rest { "http" } else { "https" };
        let (handle, inbox) = publisher::channel();
        nodes.push(Arc::new(Node {
            index,
            name: nc.name.clone(),
            host: nc.host.clone(),
            rest_url: format!("{scheme}://{}:{rest_port}", nc.host),
            rest_port,
            xmpp_port,
            xmpp_secure_port,
            xmpp_server_ports: server_ports,
            network,
            faults: tokio::sync::watch::channel(Faults::default()).0,
            publisher: handle,
            prosody: tokio::sync::Mutex::new(prosody),
            presence: Mutex::new(Default::default()),
            connections: Default::default(),
            ws_sessions: Default::default(),
        }));
        inboxes.push(inbox);
        listeners.push(listener);
    }

    let cluster = Arc::new(Cluster {
        truth: Mutex::new(truth::Truth::new(&config)),
        nodes: nodes.clone(),
        domain: config.domain.clone(),
        requests: Mutex::new(Default::default()),
        started: Instant::now(),
        published: Mutex::new(vec![(0, 0); nodes.len()]),
        chat: Arc::new(chat::Chat::default()),
        overrides: Mutex::new(Default::default()),
        relays: Mutex::new(Vec::new()),
        ids: Mutex::new(
            ids::Ids::new(cli.sso, config.sso.clone()).with_login_names(
                config
                    .agents
                    .iter()
                    .filter_map(|a| Some((a.id.clone(), a.login_name.clone()?))),
            ),
        ),
    });
    let chat_listener = TcpListener::bind("127.0.0.1:0").await?;
    let chat_url = format!("http://{}", chat_listener.local_addr()?);
    let chat_app = chat::router(cluster.chat.clone());
    let chat_cancel = cancel.clone();
    tokio::spawn(async move {
        let stop = async move { chat_cancel.cancelled().await };
        if let Err(e) = axum::serve(chat_listener, chat_app)
            .with_graceful_shutdown(stop)
            .await
        {
            error!(error = %e, "chat-session service stopped");
        }
    });

    let tls = if cli.plain_rest {
        None
    } else {
        Some(listener::acceptor(
            &std::fs::read(&pki.cert_file)?,
            &std::fs::read(&pki.key_file)?,
        )?)
    };
    // One resource per simulator process, so two simulators sharing servers never kick
    // each other's publisher session.
    let publisher_jid = Jid::new(&format!(
        "{}@{}/sim-{}",
        config.publisher.user,
        config.domain,
        std::process::id()
    ))?;
    let agents: Vec<String> = config.agents.iter().map(|a| a.id.clone()).collect();
    let media_nodes: Vec<(String, u32)> = config
        .agents
        .iter()
        .flat_map(|a| a.mrds.iter().map(|m| (a.id.clone(), *m)))
        .collect();
    for ((node, inbox), listener) in nodes.iter().zip(inboxes).zip(listeners) {
        let host = if cli.spawn_prosody {
            "127.0.0.1"
        } else {
            node.host.as_str()
        };
        // Plain on the c2s port with --plain-xmpp, else direct TLS on the secure port.
        // The publisher is inside the data centre: it reaches the server's own ports.
        let (port, publisher_tls) = if cli.plain_xmpp {
            (node.xmpp_server_ports.0, None)
        } else {
            (node.xmpp_server_ports.1, Some(client_tls.clone()))
        };
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .context("XMPP host has no address")?;
        let spec = publisher::PublisherSpec {
            login: xmpp_client::Login {
                addr,
                tls: publisher_tls,
                jid: publisher_jid.clone(),
                password: publisher_password.clone(),
            },
            agents: agents.clone(),
            media_nodes: media_nodes.clone(),
            auto_subscribe_media: config.behaviour.auto_subscribe_media,
        };
        tokio::spawn(publisher::run(spec, inbox, node.clone(), cancel.clone()));
        tokio::spawn(listener::serve(
            node.clone(),
            rest::router(cluster.clone(), node.index),
            listener,
            tls.clone(),
            cancel.clone(),
        ));
    }
    tokio::spawn(watchers::forced_logout(cluster.clone(), cancel.clone()));
    for node in &nodes {
        if let Some(p) = node.prosody.lock().await.as_ref() {
            tokio::spawn(authlog::watch(
                p.log_file(),
                cluster.clone(),
                cancel.clone(),
            ));
        }
    }

    let publishers = nodes.iter().map(|n| (n.name.as_str(), &n.publisher));
    publisher::wait_all_online(publishers, config.agents.len()).await?;

    let admin_listener = TcpListener::bind(cli.admin_listen).await?;
    let admin_url = format!("http://{}", admin_listener.local_addr()?);
    let info = json!({
        "admin": admin_url,
        "chat": chat_url,
        "domain": config.domain,
        "pubsub": format!("pubsub.{}", config.domain),
        "ca_file": pki.ca_file,
        "state_dir": dir,
        "nodes": nodes.iter().map(|n| json!({
            "name": n.name,
            "rest": n.rest_url,
            "host": n.host,
            "xmpp_port": n.xmpp_port,
            "xmpp_secure_port": n.xmpp_secure_port,
        })).collect::<Vec<_>>(),
        "agents": agents,
    });
    let admin = admin::router(cluster.clone(), info.clone());
    let admin_cancel = cancel.clone();
    tokio::spawn(async move {
        let shutdown = async move { admin_cancel.cancelled().await };
        if let Err(e) = axum::serve(admin_listener, admin)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "admin API stopped");
        }
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{info}")?;
        out.flush()?;
    }
    info!(%admin_url, "finesse-sim ready");

    stop.await;
    info!("shutting down");
    cancel.cancel();
    for node in &nodes {
        if let Some(p) = node.prosody.lock().await.as_mut() {
            let _ = p.stop().await;
        }
    }
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now; the future completes on either.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
