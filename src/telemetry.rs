//! Logging set-up, in one place for the single agent and the fleet: stderr in text, JSON or
//! journald's format, `RUST_LOG` on top of `info`, and a clamp that no directive can lift on
//! the crates that dump raw protocol bytes at trace level (SASL PLAIN and Basic-auth
//! credentials among them). It also quiets the one panic that tokio-xmpp 6.0's stream worker
//! uses to end ([`WORKER_END`]).

use crate::config::LogFormat;

/// The crates that dump raw protocol bytes at trace level, SASL PLAIN and Basic-auth
/// credentials included.
pub(crate) const PROTOCOL_CRATES: [&str; 11] = [
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

pub(crate) fn is_protocol(target: &str) -> bool {
    PROTOCOL_CRATES.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The message tokio-xmpp 6.0's stream worker panics with when the reconnect slot it asked
/// for is dropped (`stanzastream/worker.rs`): the daemon drops it when it stops an agent whose
/// session is down (a fleet's reload, a cluster hand-over, a fence), so from that file it is
/// how the worker ends, not a fault, and it is logged at debug instead.
pub const WORKER_END: &str = "Backend was unable to handle reconnect request.";

/// True for tokio-xmpp's worker ending with [`WORKER_END`] in its own source file.
fn is_worker_end(payload: &(dyn std::any::Any + Send), file: Option<&str>) -> bool {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    message == Some(WORKER_END)
        && file.is_some_and(|f| f.contains("tokio-xmpp") && f.ends_with("worker.rs"))
}

/// Sets up logging to stderr in `format` (journald's own format under systemd with `auto`),
/// filtered by `RUST_LOG` and never below the protocol crates' clamp; and quiets
/// [`WORKER_END`].
pub fn init(format: LogFormat) {
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
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_worker_end(info.payload(), info.location().map(|l| l.file())) {
            tracing::debug!(
                "an XMPP stream worker ended: its reconnect slot was dropped (an agent stopped while its session was down)"
            );
        } else {
            default(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_xmpp_workers_own_end_is_quieted() {
        let file = Some("/r/tokio-xmpp-6.0.0/src/stanzastream/worker.rs");
        assert!(is_worker_end(&WORKER_END, file));
        assert!(is_worker_end(&WORKER_END.to_owned(), file));
        assert!(!is_worker_end(&"index out of bounds", file));
        assert!(!is_worker_end(&WORKER_END, Some("src/driver/mod.rs")));
        assert!(!is_worker_end(&WORKER_END, None));
        assert!(!is_worker_end(&42_u32, file));
    }
}
