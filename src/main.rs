//! The `finesse-taskd` binary: CLI, logging, signals and exit codes. Everything else is in the
//! library ([`finesse_taskd::app`] wires it). Exit codes: 0 after a clean stop, 78 (EX_CONFIG)
//! for a configuration error (including a CA that cannot be used, or a state directory others
//! can write), 69 (EX_UNAVAILABLE) for a runtime set-up failure such as the API address being
//! taken, 73 (EX_CANTCREAT) when the state directory cannot be created, 1 for any other fatal
//! error.
//! At start the process makes itself non-dumpable (no core file with the password in it).
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use tracing::{error, info, warn};

use finesse_taskd::app;
use finesse_taskd::cli::{Cli, Command, docs};
use finesse_taskd::config::Config;
use finesse_taskd::fleet::{FleetConfig, is_fleet_file};

const EX_CONFIG: u8 = 78;
const EX_UNAVAILABLE: u8 = 69;
const EX_CANTCREAT: u8 = 73;

fn main() -> ExitCode {
    // No core dump and no ptrace by other users of this uid: the password is in memory.
    let dumpable_off = nix::sys::prctl::set_dumpable(false).is_ok();
    let cli = Cli::parse();
    if let Some(done) = docs(cli.command.as_ref()) {
        return done;
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
    finesse_taskd::telemetry::init(config.log_format);
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

/// `finesse-taskd status` (the work is in [`finesse_taskd::status::command`]).
fn status(api: Option<&str>, agent: Option<&str>, json: bool, config: Option<&Path>) -> ExitCode {
    use finesse_taskd::status::{Outcome, command, target_from};
    let target = match target_from(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("finesse-taskd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match command(api, target, agent, json) {
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

/// `fleet` and `check-config` on a fleet file: the fleet file, then every agent file (each
/// bad one named; with `check`, any bad one exits 78, while running it stops only that agent).
fn fleet(path: &Path, check: bool, dumpable_off: bool) -> ExitCode {
    let config = match FleetConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("finesse-taskd: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if check {
        let report = config.check_agents();
        for line in &report.lines {
            match line {
                Ok(valid) => println!("{valid}"),
                Err(e) => eprintln!("finesse-taskd: {e}"),
            }
        }
        println!("{}", report.summary);
        return if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EX_CONFIG)
        };
    }
    finesse_taskd::telemetry::init(config.base.log_format);
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

/// Runs `daemon` under the signal handlers ([`app::with_signals`]) and maps its end to an
/// exit code.
async fn with_signals<F, Fut>(daemon: F) -> ExitCode
where
    F: FnOnce(app::Control) -> Fut,
    Fut: std::future::Future<Output = Result<(), app::AppError>>,
{
    match app::with_signals(daemon).await {
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
        app::AppError::Orphan(_) | app::AppError::Setup(_) | app::AppError::Cluster(_) => EX_CONFIG,
        app::AppError::Bind { .. } => EX_UNAVAILABLE,
        app::AppError::Signals(_) => 1,
        app::AppError::StateDir(finesse_taskd::state_dir::StateDirError::Unsafe { .. }) => {
            EX_CONFIG
        }
        app::AppError::StateDir(finesse_taskd::state_dir::StateDirError::Create { .. }) => {
            EX_CANTCREAT
        }
    }
}
