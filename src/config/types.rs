//! The closed choices of the config file as types: the desired READY/NOT_READY state, the two
//! sign-in settings with fixed values, the stop policy, the log format, where the local API
//! listens, and how the XMPP stream is secured. Each keeps its config spelling (`as_str`) for
//! the printed config and for Finesse's XML.

use std::fmt;
use std::path::PathBuf;

macro_rules! spelled {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, with its spelling, in the order the config lists them.
            pub const CHOICES: &'static [(&'static str, $name)] = &[$(($text, $name::$variant),)+];

            /// The config (and Finesse) spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(super) use spelled;

spelled! {
    /// The base state an MRD should be in after a (re)sign-in.
    DesiredState {
        /// Routable.
        Ready => "READY",
        /// Not routable (with a reason code, optionally).
        NotReady => "NOT_READY",
    }
}

spelled! {
    /// `interruptAction`: what happens to a task when a voice call interrupts.
    InterruptAction {
        /// Accept the interruption.
        Accept => "ACCEPT",
        /// Ignore it.
        Ignore => "IGNORE",
    }
}

spelled! {
    /// `dialogLogoutAction`: what happens to the agent's tasks at sign-out.
    LogoutAction {
        /// Close them.
        Close => "CLOSE",
        /// Transfer them.
        Transfer => "TRANSFER",
    }
}

spelled! {
    /// `[shutdown] on_stop`: what the daemon does with the agent's media when it stops.
    OnStop {
        /// Nothing: a restart is back within Finesse's 60 s window.
        Leave => "leave",
        /// Sign out of each MRD.
        Logout => "logout",
        /// Set each MRD NOT_READY.
        NotReady => "not_ready",
    }
}

spelled! {
    /// `[log] format`.
    LogFormat {
        /// journald's format under systemd, text otherwise.
        Auto => "auto",
        /// Human-readable lines.
        Text => "text",
        /// One JSON object per line.
        Json => "json",
    }
}

spelled! {
    /// How the XMPP stream is secured.
    TlsMode {
        /// TLS from the first byte, as on Finesse's port 5223.
        Direct => "direct",
        /// Plain TCP upgraded with STARTTLS, as on port 5222.
        StartTls => "starttls",
        /// No TLS at all. Only for loopback tests that ask for it.
        None => "none",
    }
}

spelled! {
    /// `[xmpp] channel_binding`: SCRAM channel binding.
    ChannelBinding {
        /// Use it; when a `-PLUS` login is refused, try once without and remember that.
        Auto => "auto",
        /// Always use it (no fallback).
        Required => "required",
        /// Never use it.
        Off => "off",
    }
}

spelled! {
    /// `[xmpp] transport`: how the XMPP session reaches the Notification Service.
    Transport {
        /// TCP on 5223 (direct TLS) or 5222 (STARTTLS).
        Tcp => "tcp",
        /// WebSocket (RFC 7395) on the node's HTTPS port, as Cisco recommends.
        WebSocket => "websocket",
    }
}

// The `spelled!` enums derive no `Default`; this one needs it.
#[allow(clippy::derivable_impls)]
impl Default for ChannelBinding {
    fn default() -> Self {
        Self::Auto
    }
}

/// Where the local API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `host:port`.
    Tcp(String),
    /// `unix:/path`.
    Unix(PathBuf),
}

impl Listen {
    /// Reads the config's form: `unix:/path` or `host:port`.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("unix:") {
            Some(path) => Self::Unix(PathBuf::from(path)),
            None => Self::Tcp(text.to_owned()),
        }
    }
}

impl serde::Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => f.write_str(addr),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}
