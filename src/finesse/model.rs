//! Finesse XML documents as the daemon reads them: SystemInfo, Media, Dialogs, ApiErrors and
//! the `<Update>` a notification carries. Parsing is by element name (capitalised or
//! lower-camel wrappers alike), unknown elements are ignored, unknown enum values are kept as
//! text, and a DOCTYPE or an unknown entity is an error rather than an expansion. Reading is
//! a single pass of [`super::pull`] per document; the root element must be the one expected
//! (an HTML login page is an error, not an empty list).

pub use super::pull::XmlError;
pub(super) use super::pull::parse;

pub use super::system_info::{NodeAddress, SystemInfo};

/// `<Media>`: every field optional, as Finesse omits state and settings for an agent outside
/// the MRD, and empties some while signed out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    /// MRD id.
    pub id: Option<String>,
    /// Whether a task of this MRD can be interrupted (an MRD property).
    pub interruptible: Option<String>,
    /// The agent's state in the MRD (unknown values kept).
    pub state: Option<String>,
    /// Sign-in setting.
    pub max_dialog_limit: Option<String>,
    /// Sign-in setting.
    pub interrupt_action: Option<String>,
    /// Sign-in setting.
    pub dialog_logout_action: Option<String>,
    /// Routable flag.
    pub routable: Option<String>,
    /// Reason code id (empty when none).
    pub reason_code_id: Option<String>,
}

fn text_u32(v: &Option<String>) -> Option<u32> {
    v.as_deref().and_then(|s| s.trim().parse().ok())
}

impl Media {
    /// Parses a Media document.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse("Media", &["Media"], xml, Media::read)
    }
    /// The MRD id.
    pub fn mrd(&self) -> Option<u32> {
        text_u32(&self.id)
    }
    /// The state, or "" when absent.
    pub fn state(&self) -> &str {
        self.state.as_deref().map(str::trim).unwrap_or("")
    }
    /// maxDialogLimit as a number.
    pub fn limit(&self) -> Option<u32> {
        text_u32(&self.max_dialog_limit)
    }
    /// The reason code, when set.
    pub fn reason(&self) -> Option<u32> {
        text_u32(&self.reason_code_id)
    }
    /// `interruptible` as a boolean.
    pub fn is_interruptible(&self) -> Option<bool> {
        self.interruptible
            .as_deref()
            .map(|r| r.trim().eq_ignore_ascii_case("true"))
    }
    /// True when the agent is in a skill group of this MRD: only then does Finesse report a
    /// `state` (an MRD without one cannot be signed in to).
    pub fn is_eligible(&self) -> bool {
        self.state.is_some()
    }
    /// Routable as a boolean.
    pub fn is_routable(&self) -> Option<bool> {
        self.routable
            .as_deref()
            .map(|r| r.trim().eq_ignore_ascii_case("true"))
    }
}

/// `<MediaList>`: the agent's Media in every MRD (state only where the agent is eligible).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaList {
    /// The Media objects.
    pub media: Vec<Media>,
}

impl MediaList {
    /// Parses a MediaList document.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse("MediaList", &["MediaList"], xml, |p| {
            Ok(MediaList {
                media: p.list("Media", Media::read)?,
            })
        })
    }
}

/// `<User>`: only what SSO's loginName → loginId lookup needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The loginId (REST paths and the XMPP JID use it).
    pub login_id: Option<String>,
    /// The loginName.
    pub login_name: Option<String>,
}

impl User {
    /// Parses a User document.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse("User", &["User"], xml, |p| {
            let mut u = User::default();
            p.fields(&mut [
                ("loginId", &mut u.login_id),
                ("loginName", &mut u.login_name),
            ])?;
            u.login_id = u
                .login_id
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            Ok(u)
        })
    }
}

/// `<actions><action>…</action></actions>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Allowed actions.
    pub action: Vec<String>,
}

/// One participant (nonvoice dialogs have exactly one, the agent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    /// The agent id for nonvoice.
    pub media_address: String,
    /// Participant state.
    pub state: String,
    /// Allowed actions.
    pub actions: Actions,
    /// When the participant state changed.
    pub state_change_time: String,
}

/// `<participants>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participants {
    /// The participants.
    pub participant: Vec<Participant>,
}

/// One call variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallVariable {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `<callvariables>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallVariables {
    /// The variables.
    pub variables: Vec<CallVariable>,
}

/// `<mediaProperties>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaProperties {
    /// The MRD id.
    pub media_id: Option<String>,
    /// Queue name.
    pub queue_name: String,
    /// Call variables.
    pub callvariables: CallVariables,
}

/// `<Dialog>` (nonvoice).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialog {
    /// Dialog id (underscored for nonvoice).
    pub id: String,
    /// The MRD's name.
    pub media_type: String,
    /// Dialog state (unknown values kept).
    pub state: String,
    /// Media properties.
    pub media_properties: MediaProperties,
    /// Participants.
    pub participants: Participants,
}

impl Dialog {
    /// The MRD id from mediaProperties.
    pub fn mrd(&self) -> Option<u32> {
        text_u32(&self.media_properties.media_id)
    }
    /// The (first) participant's state.
    pub fn participant_state(&self) -> &str {
        self.participants
            .participant
            .first()
            .map(|p| p.state.as_str())
            .unwrap_or("")
    }
}

/// `<Dialogs>` (REST LIST) or `<dialogs>` (notification wrapper).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialogs {
    /// The dialogs.
    pub dialogs: Vec<Dialog>,
}

impl Dialogs {
    /// Parses a Dialogs LIST.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse("Dialogs", &["Dialogs"], xml, Dialogs::read)
    }
}

/// One ApiError, sync (capitalised) or async (lower-camel) names alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    /// The numeric code (1 = already logged in).
    pub data: String,
    /// The MRD.
    pub media: String,
    /// E_ARM_STAT_* or a message.
    pub message: String,
    /// The error type text.
    pub error_type: String,
}

/// The constant of "agent already logged in", the expected answer to a corrective sign-in.
pub const ALREADY_LOGGED_IN: &str = "E_ARM_STAT_AGENT_ALREADY_LOGGED_IN";

impl ApiError {
    /// The error's constant (`E_ARM_STAT_…`, `CF_…`): the ErrorMessage, trimmed. Errors are
    /// told apart by it, never by ErrorData alone (ErrorData 1 is both "already logged in" and,
    /// in Cisco's routable example, "already in requested mode").
    pub fn constant(&self) -> &str {
        self.message.trim()
    }
    /// "Agent already logged in", by its constant.
    pub fn is_already_logged_in(&self) -> bool {
        self.constant().eq_ignore_ascii_case(ALREADY_LOGGED_IN)
    }
    /// An ARM error (`E_ARM_STAT_…`) from the agent-state machinery.
    pub fn is_arm(&self) -> bool {
        self.constant()
            .get(..11)
            .is_some_and(|p| p.eq_ignore_ascii_case("E_ARM_STAT_"))
    }
    /// The MRD id it applies to (`ErrorMedia`, when present).
    pub fn mrd(&self) -> Option<u32> {
        self.media.trim().parse().ok()
    }
}

/// `<ApiErrors>` / `<apiErrors>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrors {
    /// The errors.
    pub errors: Vec<ApiError>,
}

impl ApiErrors {
    /// Parses a sync error body.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse("ApiErrors", &["ApiErrors"], xml, ApiErrors::read)
    }
}

/// What an `<Update>` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A Media object changed.
    Media(Media),
    /// Dialogs added to the collection (POST).
    DialogsAdded(Vec<Dialog>),
    /// Dialogs removed from the collection (DELETE).
    DialogsRemoved(Vec<Dialog>),
    /// One dialog's properties changed (PUT).
    DialogChanged(Dialog),
    /// Asynchronous errors of an earlier request.
    Errors(Vec<ApiError>),
    /// SystemInfo changed.
    SystemInfo(SystemInfo),
    /// Something this daemon does not use (kept for the count).
    Other,
}

/// A decoded `<Update>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The event (compared case-insensitively).
    pub event: String,
    /// The echoed requestId.
    pub request_id: String,
    /// The resource that changed.
    pub source: String,
    /// The payload.
    pub notification: Notification,
}

impl Update {
    /// The MRD the update is about, from its source (`/finesse/api/User/{id}/Media/{mrd}`
    /// or `…/Media/{mrd}/Dialogs`), when it names one.
    pub fn source_mrd(&self) -> Option<u32> {
        let rest = self.source.trim().split("/Media/").nth(1)?;
        rest.split('/').next()?.parse().ok()
    }

    /// Decodes the text of a `<notification>` element: the `<Update>` document, which the
    /// XMPP layer has already unescaped once. A doubly escaped text is unescaped again.
    pub fn decode(text: &str) -> Result<Update, XmlError> {
        let trimmed = text.trim();
        let owned;
        let xml = if trimmed.starts_with("&lt;") {
            owned = quick_xml::escape::unescape(trimmed)
                .map_err(|e| XmlError {
                    what: "Update",
                    message: e.to_string(),
                })?
                .into_owned();
            owned.as_str()
        } else {
            trimmed
        };
        parse("Update", &["Update"], xml, Update::read)
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
