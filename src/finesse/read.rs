//! How each Finesse document is read with [`super::pull`]: one function per element kind,
//! each taking the fields it knows (by local name, any ASCII case, so the capitalised REST
//! names and the lower-camel notification names are one) and leaving the rest. A repeated
//! element appends (lists) or wins (single fields); an absent one keeps its default.

use super::model::{
    ApiError, ApiErrors, CallVariable, CallVariables, Dialog, Dialogs, Media, MediaProperties,
    NodeAddress, Notification, Participant, SystemInfo, Update, XmlError,
};
use super::pull::{Pull, is};

type Read<T> = Result<T, XmlError>;

impl NodeAddress {
    fn read(p: &mut Pull<'_>) -> Read<Self> {
        let mut n = Self::default();
        p.fields(&mut [
            ("host", &mut n.host),
            ("httpsPort", &mut n.https_port),
            ("xmppPort", &mut n.xmpp_port),
            ("xmppSecurePort", &mut n.xmpp_secure_port),
        ])?;
        Ok(n)
    }
}

impl SystemInfo {
    pub(crate) fn read(p: &mut Pull<'_>) -> Read<Self> {
        let mut s = Self::default();
        p.children(|p, name| {
            if is(name, "status") {
                s.status = p.text()?;
            } else if is(name, "xmppDomain") {
                s.xmpp_domain = p.text()?;
            } else if is(name, "xmppPubSubDomain") {
                s.xmpp_pub_sub_domain = p.text()?;
            } else if is(name, "primaryNode") {
                s.primary_node = Some(NodeAddress::read(p)?);
            } else if is(name, "secondaryNode") {
                s.secondary_node = Some(NodeAddress::read(p)?);
            } else if is(name, "finesseMMode") {
                s.finesse_m_mode = Some(p.text()?);
            } else if is(name, "systemAuthMode") {
                s.system_auth_mode = Some(p.text()?);
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(s)
    }
}

impl Media {
    pub(crate) fn read(p: &mut Pull<'_>) -> Read<Self> {
        let mut m = Self::default();
        p.fields(&mut [
            ("id", &mut m.id),
            ("interruptible", &mut m.interruptible),
            ("state", &mut m.state),
            ("maxDialogLimit", &mut m.max_dialog_limit),
            ("interruptAction", &mut m.interrupt_action),
            ("dialogLogoutAction", &mut m.dialog_logout_action),
            ("routable", &mut m.routable),
            ("reasonCodeId", &mut m.reason_code_id),
        ])?;
        Ok(m)
    }
}

impl Participant {
    fn read(p: &mut Pull<'_>) -> Read<Self> {
        let mut x = Self::default();
        p.children(|p, name| {
            if is(name, "mediaAddress") {
                x.media_address = p.text()?;
            } else if is(name, "state") {
                x.state = p.text()?;
            } else if is(name, "stateChangeTime") {
                x.state_change_time = p.text()?;
            } else if is(name, "actions") {
                x.actions.action = p.list("action", Pull::text)?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(x)
    }
}

impl MediaProperties {
    fn read(p: &mut Pull<'_>) -> Read<Self> {
        let mut m = Self::default();
        p.children(|p, name| {
            if is(name, "mediaId") {
                m.media_id = Some(p.text()?);
            } else if is(name, "queueName") {
                m.queue_name = p.text()?;
            } else if is(name, "callvariables") {
                m.callvariables = CallVariables::read(p)?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl CallVariables {
    fn read(p: &mut Pull<'_>) -> Read<Self> {
        let variables = p.list("CallVariable", |p| {
            let mut v = CallVariable::default();
            p.fields(&mut [("name", &mut v.name), ("value", &mut v.value)])?;
            Ok(v)
        })?;
        Ok(Self { variables })
    }
}

impl Dialog {
    fn read(p: &mut Pull<'_>) -> Read<Self> {
        let mut d = Self::default();
        p.children(|p, name| {
            if is(name, "Dialog") {
                // `<dialog><Dialog>…</Dialog></dialog>`: the wrapper holds the object.
                d = Dialog::read(p)?;
            } else if is(name, "id") {
                d.id = p.text()?;
            } else if is(name, "state") {
                d.state = p.text()?;
            } else if is(name, "mediaType") {
                d.media_type = p.text()?;
            } else if is(name, "mediaProperties") {
                d.media_properties = MediaProperties::read(p)?;
            } else if is(name, "participants") {
                d.participants.participant = p.list("Participant", Participant::read)?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(d)
    }
}

impl Dialogs {
    pub(crate) fn read(p: &mut Pull<'_>) -> Read<Self> {
        Ok(Self {
            dialogs: p.list("Dialog", Dialog::read)?,
        })
    }
}

impl ApiErrors {
    pub(crate) fn read(p: &mut Pull<'_>) -> Read<Self> {
        let errors = p.list("ApiError", |p| {
            let mut e = ApiError::default();
            p.fields(&mut [
                ("ErrorData", &mut e.data),
                ("ErrorMedia", &mut e.media),
                ("ErrorMessage", &mut e.message),
                ("ErrorType", &mut e.error_type),
            ])?;
            Ok(e)
        })?;
        Ok(Self { errors })
    }
}

/// What `<data>` held, before it is classified by the event.
#[derive(Default)]
struct Data {
    media: Option<Media>,
    dialogs: Option<Dialogs>,
    dialog: Option<Dialog>,
    api_errors: Option<ApiErrors>,
    system_info: Option<SystemInfo>,
}

impl Update {
    pub(crate) fn read(p: &mut Pull<'_>) -> Read<Self> {
        let (mut data, mut event, mut request_id, mut source) =
            (Data::default(), String::new(), String::new(), String::new());
        p.children(|p, name| {
            if is(name, "data") {
                p.children(|p, name| {
                    if is(name, "Media") {
                        data.media = Some(Media::read(p)?);
                    } else if is(name, "dialogs") {
                        data.dialogs = Some(Dialogs::read(p)?);
                    } else if is(name, "dialog") {
                        data.dialog = Some(Dialog::read(p)?);
                    } else if is(name, "apiErrors") {
                        data.api_errors = Some(ApiErrors::read(p)?);
                    } else if is(name, "SystemInfo") {
                        data.system_info = Some(SystemInfo::read(p)?);
                    } else {
                        return Ok(false);
                    }
                    Ok(true)
                })?;
            } else if is(name, "event") {
                event = p.text()?;
            } else if is(name, "requestId") {
                request_id = p.text()?;
            } else if is(name, "source") {
                source = p.text()?;
            } else {
                return Ok(false);
            }
            Ok(true)
        })?;
        let event = event.trim().to_ascii_uppercase();
        let notification = classify(data, &event);
        Ok(Update {
            event,
            request_id,
            source,
            notification,
        })
    }
}

fn classify(d: Data, event: &str) -> Notification {
    let delete = event == "DELETE";
    if let Some(e) = d.api_errors {
        Notification::Errors(e.errors)
    } else if let Some(m) = d.media {
        Notification::Media(m)
    } else if let Some(list) = d.dialogs {
        if delete {
            Notification::DialogsRemoved(list.dialogs)
        } else {
            Notification::DialogsAdded(list.dialogs)
        }
    } else if let Some(dialog) = d.dialog {
        if delete {
            Notification::DialogsRemoved(vec![dialog])
        } else {
            Notification::DialogChanged(dialog)
        }
    } else if let Some(s) = d.system_info {
        Notification::SystemInfo(s)
    } else {
        Notification::Other
    }
}
