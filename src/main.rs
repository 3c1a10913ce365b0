//! The `finesse-taskd` daemon binary. The session core (REST + XMPP hold, recovery, resync)
//! is not built yet; until it is, this binary only reports that and exits non-zero, so that
//! nobody deploys it by mistake.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("finesse-taskd {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    eprintln!("finesse-taskd: the daemon core is not implemented yet; only finesse-sim is usable");
    ExitCode::FAILURE
}
