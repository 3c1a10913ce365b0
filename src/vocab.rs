//! The words every layer shares: the daemon's [`Phase`], why a failure happened
//! ([`Cause`]), which link it concerns ([`LinkKind`]), what an event on the stream is
//! ([`EventKind`]), the dialog actions the local API accepts ([`DialogAction`]), and why a
//! sign-in or a resync happened, and the records of the state directory ([`StateRecord`]). Each has one spelling for the wire and the logs (`as_str`,
//! also its `Display` and its serde form), so no layer compares strings to decide anything.

use std::fmt;

use serde::{Serialize, Serializer};

/// The most passwords one XMPP login sends: a channel-binding attempt and, when that is
/// refused, one fallback without. The login gate waits out `auth_retry` for each refusal.
pub const MAX_REFUSALS: u32 = 2;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire and log spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value spelled `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        /// In the API's OpenAPI document: a string, one of the wire spellings.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text,)+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

wire_enum! {
    /// Where the daemon is, as `/v1/state`, the metrics and STATUS= show it.
    Phase {
        /// First connection.
        Starting => "starting",
        /// A link or the node is down; waiting or retrying.
        Recovering => "recovering",
        /// Media GET, corrections and Dialog LIST.
        Resyncing => "resyncing",
        /// All links up and the view in sync.
        Steady => "steady",
        /// Credentials rejected; waiting `auth_retry` before one more try.
        AuthFailed => "auth_failed",
        /// The SSO refresh token has expired: an operator must fetch a new token pair
        /// (retried once per `auth_retry` meanwhile).
        AuthExpired => "auth_expired",
        /// Credentials rejected while SystemInfo's `systemAuthMode` disagrees with `[agent]
        /// auth`: the config's mode is probably wrong for this site.
        AuthModeMismatch => "auth_mode_mismatch",
        /// Another session took our XMPP resource.
        Conflict => "conflict",
        /// Shutting down.
        Stopping => "stopping",
    }
}

wire_enum! {
    /// Why the daemon is not (or was not) steady.
    Cause {
        /// A REST connect, TLS or timeout error.
        RestUnreachable => "rest_unreachable",
        /// A 5xx other than 503.
        Rest5xx => "rest_5xx",
        /// A 4xx other than 401.
        Rest4xx => "rest_4xx",
        /// A 3xx: a redirect (a proxy's login page, a load balancer) is never a success.
        Rest3xx => "rest_3xx",
        /// A body over `max_body`.
        RestOversized => "rest_oversized",
        /// A body that is not the expected document.
        RestMalformed => "rest_malformed",
        /// SystemInfo (or a 503) says the node is not in service.
        OutOfService => "out_of_service",
        /// The `finesse` user's presence went unavailable.
        FinesseUnavailable => "finesse_unavailable",
        /// Credentials rejected (REST 401 or SASL not-authorized).
        AuthFailed => "auth_failed",
        /// The SSO refresh token has expired, so no valid access token can be had.
        AuthExpired => "auth_expired",
        /// Credentials rejected while `systemAuthMode` disagrees with the config.
        AuthModeMismatch => "auth_mode_mismatch",
        /// Another session took our XMPP resource.
        Conflict => "conflict",
        /// The XMPP session closed or broke.
        XmppLost => "xmpp_lost",
        /// The XMPP stream ended (the link reported nothing more).
        XmppClosed => "xmpp_closed",
        /// A ping went unanswered.
        XmppPingTimeout => "xmpp_ping_timeout",
        /// The server sent a stanza over `[xmpp] max_stanza`, or nesting too deep: the stream
        /// was dropped before it could take the daemon's memory.
        XmppOversize => "xmpp_oversize",
        /// The login did not finish in time.
        XmppTimeout => "xmpp_timeout",
        /// The login failed (connect, TLS, stream).
        XmppUnreachable => "xmpp_unreachable",
        /// Presence or subscriptions did not complete.
        XmppSetup => "xmpp_setup",
        /// SASL failed for a reason other than the password (no usable mechanism, a
        /// temporary failure, a malformed exchange).
        XmppSasl => "xmpp_sasl",
        /// The XMPP login cannot be built from the config and SystemInfo.
        XmppConfig => "xmpp_config",
        /// A reload changed the connection settings.
        Reload => "reload",
        /// Finesse refused the sign-in of an eligible MRD.
        SigninFailed => "signin_failed",
        /// The node is in maintenance mode (`finesseMMode`): desktops move to the other.
        Maintenance => "maintenance",
    }
}

impl Cause {
    /// True for the causes that hold everything carrying the credentials for `auth_retry`.
    pub const fn is_auth(self) -> bool {
        matches!(
            self,
            Self::AuthFailed | Self::AuthExpired | Self::AuthModeMismatch
        )
    }

    /// The phase an auth hold for this cause shows (`auth_failed` for any other cause).
    pub const fn auth_phase(self) -> Phase {
        match self {
            Self::AuthExpired => Phase::AuthExpired,
            Self::AuthModeMismatch => Phase::AuthModeMismatch,
            _ => Phase::AuthFailed,
        }
    }
}

wire_enum! {
    /// The two sessions the daemon holds.
    LinkKind {
        /// The REST session.
        Rest => "rest",
        /// The XMPP pubsub session.
        Xmpp => "xmpp",
    }
}

wire_enum! {
    /// What a `reconnects` count is about: a link, or the node as a whole.
    ReconnectScope {
        /// The XMPP session was lost.
        Xmpp => "xmpp",
        /// The node left service while the session stayed.
        Node => "node",
    }
}

wire_enum! {
    /// The `type` of an event on the stream.
    EventKind {
        /// The phase or its cause changed.
        Phase => "phase",
        /// A link went up.
        LinkUp => "link.up",
        /// A link went down.
        LinkDown => "link.down",
        /// An MRD's view changed.
        MediaChanged => "media.changed",
        /// A dialog appeared.
        DialogAdded => "dialog.added",
        /// A dialog changed.
        DialogChanged => "dialog.changed",
        /// A dialog went away.
        DialogRemoved => "dialog.removed",
        /// A resync finished.
        ResyncCompleted => "resync.completed",
        /// The client missed events and must refetch `/v1/state`.
        ResyncRequired => "resync.required",
        /// The orphan guard found a dialog whose session is gone.
        DialogOrphaned => "dialog.orphaned",
    }
}

wire_enum! {
    /// The dialog actions the local API accepts.
    DialogAction {
        /// Take an offered task.
        Accept => "ACCEPT",
        /// Start work on it.
        Start => "START",
        /// Pause it.
        Pause => "PAUSE",
        /// Resume it.
        Resume => "RESUME",
        /// Wrap it up.
        WrapUp => "WRAP_UP",
        /// Close it.
        Close => "CLOSE",
        /// Transfer it.
        Transfer => "TRANSFER",
    }
}

wire_enum! {
    /// Why a sign-in was sent (the `signins` metric's label).
    SigninReason {
        /// The daemon's first sign-in.
        Initial => "initial",
        /// The MRD read LOGOUT (a forced logout, or signed out elsewhere).
        Logout => "logout",
        /// The MRD was signed out on this node (a failover or a node that forgot it).
        Failover => "failover",
        /// The settings drifted.
        Drift => "drift",
    }
}

wire_enum! {
    /// One of the three sign-in settings, as Finesse names it.
    Setting {
        /// `maxDialogLimit`.
        MaxDialogLimit => "maxDialogLimit",
        /// `interruptAction`.
        InterruptAction => "interruptAction",
        /// `dialogLogoutAction`.
        DialogLogoutAction => "dialogLogoutAction",
    }
}

wire_enum! {
    /// Why steady state ended for a resync without losing a link.
    ResyncReason {
        /// `resync_every` elapsed.
        Periodic => "periodic",
        /// A reload changed the media or the connection.
        Reload => "reload",
        /// A notification showed an MRD signed out.
        MediaSignedOut => "media_signed_out",
        /// A notification showed drifted settings.
        SettingsDrift => "settings_drift",
        /// A refused sign-in is due for another try.
        SigninRetry => "signin_retry",
    }
}

wire_enum! {
    /// A record the daemon keeps in its state directory; the spelling is the file's name.
    StateRecord {
        /// Every refusal of the credentials within the lockout window.
        Refusals => "auth-refusals",
        /// The desired states the API set.
        Desired => "desired-state",
        /// The MRDs the API made unroutable.
        Unroutable => "unroutable",
    }
}

impl ResyncReason {
    /// True when the resync repairs something that went wrong (and so counts in
    /// `time_to_ready`); a periodic or reload resync is routine.
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::MediaSignedOut | Self::SettingsDrift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back_to_its_value_and_is_unique() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(*c));
        }
        let mut seen: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), Cause::ALL.len());
        assert_eq!(DialogAction::parse("WRAP_UP"), Some(DialogAction::WrapUp));
        assert_eq!(DialogAction::parse("wrap_up"), None);
        assert_eq!(
            serde_json::to_value(Phase::AuthFailed).unwrap(),
            "auth_failed"
        );
    }
}
