//! The `finesse-taskd` binary: CLI, logging, signals and exit codes. Everything else is in the
//! library. Exit codes: 0 after a clean stop, 78 (EX_CONFIG) for a configuration error, 1 for
//! any other fatal error.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use finesse_taskd::config::Config;
use finesse_taskd::supervisor::Supervisor;
use finesse_taskd::supervisor::state::Shared;

const EX_CONFIG: u8 = 78;

/// Keeps a Cisco Finesse agent's nonvoice (task-routing) session healthy.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The agent's config file (for the default `run`).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the config file, print it with the password redacted, and exit (0 valid,
    /// 78 invalid, with every error naming its key).
    CheckConfig {
        /// The config file (or use --config).
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let positional = match &cli.command {
        Some(Command::CheckConfig { file }) => file.clone(),
        _ => None,
    };
    let Some(path) = positional.or_else(|| cli.config.clone()) else {
        eprintln!("finesse-taskd: --config FILE is required");
        return ExitCode::from(EX_CONFIG);
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("finesse-taskd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if matches!(cli.command, Some(Command::CheckConfig { .. })) {
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}: valid", path.display());
        println!(
            "{}",
            serde_json::to_string_pretty(&config.redacted()).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    init_logging(&config.log_format);
    for w in &config.warnings {
        warn!("{w}");
    }
    // One agent's sessions are I/O-bound: one thread keeps the footprint and the wakeups low.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

fn init_logging(format: &str) {
    let Ok(mut filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return finish_logging(format, "info,tokio_xmpp=warn".into());
    };
    // At trace level these crates dump raw protocol bytes, including the SASL PLAIN and the
    // Basic-auth credentials: cap them at debug whatever RUST_LOG says.
    for target in [
        "tokio_xmpp",
        "xmpp_parsers",
        "xso",
        "minidom",
        "rxml",
        "sasl",
        "hyper",
        "hyper_util",
        "h2",
        "reqwest",
        "rustls",
    ] {
        if let Ok(d) = format!("{target}=debug").parse() {
            filter = filter.add_directive(d);
        }
    }
    finish_logging(format, filter);
}

fn finish_logging(format: &str, filter: tracing_subscriber::EnvFilter) {
    let json = format == "json";
    let journald = format == "auto" && std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else if journald {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}

async fn run(config: Config) -> ExitCode {
    // Installed before anything announces that the daemon is up: a SIGTERM or SIGHUP sent
    // right after "local API listening" must reach these handlers, not the default action
    // (which would kill the daemon without its stop policy).
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            error!(error = %e, "cannot install the signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared::new(&config.agent_id, config.event_ring));
    let shutdown = CancellationToken::new();
    let (commands_tx, commands_rx) = tokio::sync::mpsc::channel(64);
    let probes: std::collections::BTreeMap<u32, _> = config
        .media
        .iter()
        .filter_map(|m| m.orphan_probe.clone().map(|p| (m.id, p)))
        .collect();
    let guard = if probes.is_empty() {
        None
    } else {
        match finesse_taskd::orphan::Guard::new(
            probes,
            shared.clone(),
            commands_tx.clone(),
            shutdown.clone(),
        ) {
            Ok(g) => Some(g),
            Err(e) => {
                error!(error = %e, "cannot set up the orphan probe");
                return ExitCode::from(EX_CONFIG);
            }
        }
    };
    let metrics_view = shared.clone();
    let api = finesse_taskd::api::router(finesse_taskd::api::ApiState {
        shared: shared.clone(),
        commands: commands_tx,
        action_wait: config.action_wait,
        request_timeout: config.request_timeout,
        metrics: Arc::new(move || metrics_view.metrics.render(&metrics_view.snapshot())),
    });
    let api_stop = shutdown.clone();
    let stop = async move { api_stop.cancelled().await };
    let api_task = if let Some(path) = config.api_listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = match tokio::net::UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) => {
                error!(listen = %config.api_listen, error = %e, "cannot bind the local API");
                return ExitCode::from(EX_CONFIG);
            }
        };
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)) {
                warn!(error = %e, "cannot set the API socket's mode to 0660");
            }
        }
        info!(addr = %config.api_listen, agent = %config.agent_id, "local API listening");
        tokio::spawn(async move {
            let _ = axum::serve(listener, api)
                .with_graceful_shutdown(stop)
                .await;
        })
    } else {
        let listener = match tokio::net::TcpListener::bind(&config.api_listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(listen = %config.api_listen, error = %e, "cannot bind the local API");
                return ExitCode::from(EX_CONFIG);
            }
        };
        match listener.local_addr() {
            Ok(addr) => info!(%addr, agent = %config.agent_id, "local API listening"),
            Err(e) => warn!(error = %e, "local API address unknown"),
        }
        tokio::spawn(async move {
            let _ = axum::serve(listener, api)
                .with_graceful_shutdown(stop)
                .await;
        })
    };
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = match Supervisor::new(config, shared, shutdown.clone(), commands_rx) {
        Ok(s) => match guard {
            Some(g) => s.with_reloads(reload_rx).with_orphans(g),
            None => s.with_reloads(reload_rx),
        },
        Err(e) => {
            error!(error = %e, "cannot start");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let signals = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the configuration");
                    let _ = reload_tx.send(());
                }
            }
        }
        signals.cancel();
    });
    let result = supervisor.run().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), api_task).await;
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "fatal");
            ExitCode::FAILURE
        }
    }
}
