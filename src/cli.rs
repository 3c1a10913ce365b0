//! The command line (clap): `run` (the default), `fleet`, `check-config`, `status`, the
//! shell completions and man page generated from the same definition (the .deb ships both),
//! and the local API's OpenAPI document (`openapi`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Keeps a Cisco Finesse agent's nonvoice (task-routing) session healthy.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The subcommand (`run` when none is given).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The agent's config file (for the default `run`).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Print the local API's OpenAPI 3.1 document on stdout (what `/v1/openapi.json` serves;
    /// `contrib/openapi.json` and `contrib/openapi-fleet.json` are these).
    Openapi {
        /// The fleet's document (a single agent's otherwise).
        #[arg(long)]
        fleet: bool,
    },
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

/// `completions` and `man`: printed on stdout.
pub fn docs(command: Option<&Command>) -> Option<ExitCode> {
    use clap::CommandFactory as _;
    let printed = match command? {
        Command::Completions { shell } => {
            let out = &mut std::io::stdout();
            clap_complete::generate(*shell, &mut Cli::command(), "finesse-taskd", out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()),
        Command::Openapi { fleet } => {
            let doc = if *fleet {
                crate::fleet::api::document()
            } else {
                crate::api::document()
            };
            doc.to_pretty_json()
                .map_err(std::io::Error::other)
                .and_then(|text| {
                    use std::io::Write as _;
                    writeln!(std::io::stdout(), "{text}")
                })
        }
        _ => return None,
    };
    Some(match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("finesse-taskd: {e}");
            ExitCode::FAILURE
        }
    })
}
