//! The `[api]` table's bounds and socket access: how many connections and event streams the
//! local API takes at once, how long it waits for a request's headers or for a client to take
//! what it was sent, and who may connect to its Unix socket.

use std::path::Path;
use std::time::Duration;

use super::raw::RawApi;
use super::{ConfigError, err};

/// What one local client can hold of the daemon.
/// Printed under `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiLimits {
    /// Connections at once (`max_connections`); the next wait in the kernel's backlog, so
    /// local clients cannot take the file descriptors the Finesse sessions need.
    #[serde(rename = "api.max_connections")]
    pub max_connections: usize,
    /// Event-stream clients at once (`max_sse_clients`); more get 503.
    #[serde(rename = "api.max_sse_clients")]
    pub max_sse_clients: usize,
    /// A client that has not sent a request's headers this long after connecting (or after
    /// its last answer: an idle keep-alive connection) is dropped.
    #[serde(rename = "api.header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A client that takes nothing of what it was sent this long is dropped (a stuck event
    /// stream frees its slot; on reconnecting it is told to resync).
    #[serde(rename = "api.write_timeout", with = "humantime_serde")]
    pub write_timeout: Duration,
}

/// Who may connect to the API's Unix socket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SocketAccess {
    /// The socket file's mode (`socket_mode`, octal, default `0660`).
    #[serde(rename = "api.socket_mode", serialize_with = "super::print::octal")]
    pub mode: u32,
    /// The group it is given (`socket_group`): the task application's, so that its user can
    /// connect. Name and id.
    #[serde(rename = "api.socket_group", serialize_with = "super::print::group")]
    pub group: Option<(String, u32)>,
}

pub(super) fn limits(f: &Path, raw: &RawApi) -> Result<ApiLimits, ConfigError> {
    let range = |key: &str, value: usize, lo: usize, hi: usize| {
        if (lo..=hi).contains(&value) {
            Ok(value)
        } else {
            Err(err(f, key, format!("{value} is out of range {lo}..={hi}")))
        }
    };
    let positive = |key: &str, value: Duration| {
        if value.is_zero() {
            Err(err(f, key, "must be above zero"))
        } else {
            Ok(value)
        }
    };
    let max_connections = range("api.max_connections", raw.max_connections, 4, 65_536)?;
    let max_sse_clients = range("api.max_sse_clients", raw.max_sse_clients, 1, 10_000)?;
    if max_sse_clients >= max_connections {
        return Err(err(
            f,
            "api.max_sse_clients",
            format!(
                "{max_sse_clients} must be below api.max_connections ({max_connections}), so that \
                 event streams cannot take every connection"
            ),
        ));
    }
    Ok(ApiLimits {
        max_connections,
        max_sse_clients,
        header_read_timeout: positive("api.header_read_timeout", raw.header_read_timeout)?,
        write_timeout: positive("api.write_timeout", raw.write_timeout)?,
    })
}

pub(super) fn socket(f: &Path, raw: &RawApi) -> Result<SocketAccess, ConfigError> {
    let key = "api.socket_mode";
    let mode = u32::from_str_radix(raw.socket_mode.trim_start_matches("0o"), 8).map_err(|_| {
        err(
            f,
            key,
            format!("{:?} is not an octal mode", raw.socket_mode),
        )
    })?;
    if mode > 0o777 {
        return Err(err(
            f,
            key,
            format!("{:?} is not a file mode", raw.socket_mode),
        ));
    }
    if mode & 0o007 != 0 {
        return Err(err(
            f,
            key,
            format!(
                "{:?} lets every local user drive the API; use socket_group for the task \
                 application's user instead",
                raw.socket_mode
            ),
        ));
    }
    let group = match raw.socket_group.as_deref() {
        None => None,
        Some(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Some((name.to_owned(), g.gid.as_raw())),
            Ok(None) => return Err(err(f, "api.socket_group", format!("no group {name:?}"))),
            Err(e) => {
                return Err(err(
                    f,
                    "api.socket_group",
                    format!("cannot look up group {name:?}: {e}"),
                ));
            }
        },
    };
    Ok(SocketAccess { mode, group })
}
