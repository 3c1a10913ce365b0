//! Logging set-up, in one place for the single agent and the fleet: stderr in text, JSON or
//! journald's format, `RUST_LOG` on top of `info`, and a clamp that no directive can lift on
//! the crates that dump raw protocol bytes at trace level (SASL PLAIN and Basic-auth
//! credentials among them).

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

/// Sets up logging to stderr in `format` (journald's own format under systemd with `auto`),
/// filtered by `RUST_LOG` and never below the protocol crates' clamp.
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
}
