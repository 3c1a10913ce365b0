//! The `finesse-taskd` binary: CLI, logging, signals and exit codes. Everything else is in the
//! library ([`finesse_taskd::app`] wires it). Exit codes: 0 after a clean stop, 78 (EX_CONFIG)
//! for a configuration error (including a CA that cannot be used), 69 (EX_UNAVAILABLE) for a
//! runtime set-up failure such as the API address being taken, 1 for any other fatal error.
//! At start the process makes itself non-dumpable (no core file with the password in it).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use finesse_taskd::app;
use finesse_taskd::config::{Config, LogFormat};
use finesse_taskd::fleet::FleetConfig;

const EX_CONFIG: u8 = 78;
const EX_UNAVAILABLE: u8 = 69;

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
    /// Print a short summary of a running daemon or fleet from its local API (exit 0 when
    /// ready, 1 when not, 69 when the API cannot be reached).
    Status {
        /// The API: `host:port`, `http://host:port` or `unix:/path` (default: `[api] listen`
        /// of --config, whose `[api]` token is sent too).
        #[arg(long)]
        api: Option<String>,
        /// In fleet mode, this agent only.
        #[arg(long)]
        agent: Option<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
    /// Run many agents in one process: --config names the fleet file (shared tables and
    /// `[fleet] agents_dir`, one agent file per agent there).
    Fleet,
    /// Validate the config file, print it with the password redacted, and exit (0 valid,
    /// 78 invalid, with every error naming its key).
    CheckConfig {
        /// The config file (or use --config).
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // No core dump and no ptrace by other users of this uid: the password is in memory.
    let dumpable_off = nix::sys::prctl::set_dumpable(false).is_ok();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory as _;
            let mut command = Cli::command();
            clap_complete::generate(
                *shell,
                &mut command,
                "finesse-taskd",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => {
            use clap::CommandFactory as _;
            let page = clap_mangen::Man::new(Cli::command());
            return match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("finesse-taskd: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    if let Some(Command::Status { api, agent, json }) = &cli.command {
        return status(
            api.as_deref(),
            agent.as_deref(),
            *json,
            cli.config.as_deref(),
        );
    }
    let positional = match &cli.command {
        Some(Command::CheckConfig { file }) => file.clone(),
        _ => None,
    };
    let Some(path) = positional.or_else(|| cli.config.clone()) else {
        eprintln!("finesse-taskd: --config FILE is required");
        return ExitCode::from(EX_CONFIG);
    };
    let check = matches!(cli.command, Some(Command::CheckConfig { .. }));
    if matches!(cli.command, Some(Command::Fleet)) || (check && is_fleet_file(&path)) {
        return fleet(&path, check, dumpable_off);
    }
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
    init_logging(config.log_format);
    if !dumpable_off {
        warn!("cannot make the process non-dumpable; a core file could hold the password");
    }
    for w in &config.warnings {
        warn!("{w}");
    }
    // One agent's sessions are I/O-bound: one thread keeps the footprint and the wakeups low.
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(run(config))
}

/// The crates that dump raw protocol bytes at trace level, SASL PLAIN and Basic-auth
/// credentials included.
const PROTOCOL_CRATES: [&str; 11] = [
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
];

fn is_protocol(target: &str) -> bool {
    PROTOCOL_CRATES.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_xmpp=warn"));
    // A filter on the layer itself, after RUST_LOG: no directive, however specific
    // (`tokio_xmpp::xmlstream=trace`), brings the protocol crates' trace output back.
    let clamp = tracing_subscriber::filter::filter_fn(|m| {
        !(is_protocol(m.target()) && *m.level() == tracing::Level::TRACE)
    });
    let json = format == LogFormat::Json;
    let journald = format == LogFormat::Auto && std::env::var_os("JOURNAL_STREAM").is_some();
    let base = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = if json {
        base.json().boxed()
    } else if journald {
        base.without_time().with_ansi(false).boxed()
    } else {
        base.boxed()
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(clamp))
        .init();
}

/// `finesse-taskd status` (the work is in [`finesse_taskd::status::command`]).
fn status(
    api: Option<&str>,
    agent: Option<&str>,
    json: bool,
    config: Option<&std::path::Path>,
) -> ExitCode {
    use finesse_taskd::status::{Outcome, command};
    let target = match (api, config) {
        (api, Some(path)) => {
            let from = if is_fleet_file(path) {
                FleetConfig::load(path)
                    .map(|f| (f.base.api_listen.clone(), f.base.api_token.clone()))
            } else {
                Config::load(path).map(|c| (c.api_listen.clone(), c.api_token.clone()))
            };
            match from {
                Ok((listen, token)) => (api.map(str::to_owned), Some((listen, token))),
                Err(e) => {
                    eprintln!("finesse-taskd: {e}");
                    return ExitCode::from(EX_CONFIG);
                }
            }
        }
        (api, None) => (api.map(str::to_owned), None),
    };
    match command(target.0.as_deref(), target.1, agent, json) {
        Outcome::Ready => ExitCode::SUCCESS,
        Outcome::NotReady => ExitCode::from(1),
        Outcome::Unreachable => ExitCode::from(EX_UNAVAILABLE),
        Outcome::Usage => ExitCode::from(EX_CONFIG),
    }
}

/// The runtime `builder` makes, with I/O and time; the error logged.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            None
        }
    }
}

/// True when `path` is a fleet file (it has a `[fleet]` table).
fn is_fleet_file(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("fleet"))
}

/// `fleet` and `check-config` on a fleet file: the fleet file, then every agent file (each
/// bad one named; with `check`, any bad one exits 78, while running it stops only that agent).
fn fleet(path: &std::path::Path, check: bool, dumpable_off: bool) -> ExitCode {
    let config = match FleetConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("finesse-taskd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if check {
        let files = match config.agent_files() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("finesse-taskd: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        let mut bad = 0;
        for file in &files {
            match config.load_agent(file) {
                Ok(a) => println!("{}: valid (agent {})", file.display(), a.agent_id),
                Err(e) => {
                    bad += 1;
                    eprintln!("finesse-taskd: {e}");
                }
            }
        }
        println!(
            "{}: {} agent files, {bad} invalid",
            path.display(),
            files.len()
        );
        return if bad == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EX_CONFIG)
        };
    }
    init_logging(config.base.log_format);
    if !dumpable_off {
        warn!("cannot make the process non-dumpable; a core file could hold the passwords");
    }
    // Many agents: one worker per core.
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(with_signals(|control| {
        finesse_taskd::fleet::run(config, control)
    }))
}

async fn run(config: Config) -> ExitCode {
    with_signals(|control| app::run(config, control)).await
}

/// Installs the signal handlers, then runs `daemon` with them: SIGTERM/SIGINT stop it,
/// SIGHUP reloads.
async fn with_signals<F, Fut>(daemon: F) -> ExitCode
where
    F: FnOnce(app::Control) -> Fut,
    Fut: std::future::Future<Output = Result<(), app::AppError>>,
{
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
    let shutdown = CancellationToken::new();
    let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
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
    match daemon(app::Control { shutdown, reloads }).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "fatal");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 78 (EX_CONFIG) when the configuration cannot be used as written (a CA, a probe's CA);
/// 69 (EX_UNAVAILABLE) when the system refuses what the configuration asks for at run time
/// (the API address taken): systemd restarts the second kind, not the first.
fn exit_code(e: &app::AppError) -> u8 {
    match e {
        app::AppError::Orphan(_) | app::AppError::Setup(_) => EX_CONFIG,
        app::AppError::Bind { .. } => EX_UNAVAILABLE,
    }
}
