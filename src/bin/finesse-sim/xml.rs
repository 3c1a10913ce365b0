//! The simulator's own XML, written by hand from the facts file's shapes (it shares nothing
//! with the daemon's model), and a small reader for the flat PUT bodies it accepts.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::truth::{Agent, Dialog, MediaShape, MediaView, Mrd, allowed_actions};

/// Escapes text for element content.
pub fn esc(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

fn time(t: Option<SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_millis(t).to_string())
        .unwrap_or_default()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `<Media>` for one MRD of one agent. `view` is `None` when the agent is not in the MRD,
/// which leaves only the MRD facts, as Finesse does.
pub fn media(
    agent: &str,
    mrd_id: u32,
    mrd: &Mrd,
    view: Option<&MediaView>,
    shape: MediaShape,
) -> String {
    // Each element once, then written in Cisco's order (the task-routing Media GET example:
    // near-alphabetical, interruptAction last) or in the fact sheet's.
    let el = |name: &str, text: String| format!("<{name}>{text}</{name}>");
    let mut parts: Vec<(&str, String)> = vec![
        (
            "uri",
            el("uri", format!("/finesse/api/User/{agent}/Media/{mrd_id}")),
        ),
        ("id", el("id", mrd_id.to_string())),
        ("name", el("name", esc(&mrd.name))),
        ("description", el("description", esc(&mrd.name))),
        (
            "interruptible",
            el("interruptible", mrd.interruptible.to_string()),
        ),
    ];
    if let Some(v) = view {
        let interrupt = if shape.ignore_when_not_interruptible && !mrd.interruptible {
            "IGNORE"
        } else {
            v.settings.interrupt_action.as_str()
        };
        parts.push((
            "maxDialogLimit",
            el("maxDialogLimit", v.settings.max_dialog_limit.to_string()),
        ));
        if !shape.no_interrupt_action {
            parts.push(("interruptAction", el("interruptAction", esc(interrupt))));
        }
        parts.push((
            "dialogLogoutAction",
            el("dialogLogoutAction", esc(&v.settings.dialog_logout_action)),
        ));
        parts.push(("routable", el("routable", v.routable.to_string())));
        parts.push(("state", el("state", esc(&v.state))));
        parts.push(("reasonCodeId", el("reasonCodeId", opt(v.reason_code_id))));
        if let Some(id) = v.reason_code_id {
            let category = if v.state == "LOGOUT" {
                "LOGOUT"
            } else {
                "NOT_READY"
            };
            parts.push((
                "ReasonCode",
                format!(
                    "<ReasonCode><category>{category}</category><code>{id}</code>\
                     <forAll>true</forAll><id>{id}</id><label>Reason {id}</label>\
                     <uri>/finesse/api/ReasonCode/{id}</uri></ReasonCode>"
                ),
            ));
        }
        parts.push((
            "stateChangeTime",
            el("stateChangeTime", time(v.state_change_time)),
        ));
    }
    if shape.cisco_order {
        const ORDER: [&str; 13] = [
            "uri",
            "description",
            "dialogLogoutAction",
            "id",
            "interruptible",
            "maxDialogLimit",
            "name",
            "ReasonCode",
            "reasonCodeId",
            "routable",
            "state",
            "stateChangeTime",
            "interruptAction",
        ];
        parts.sort_by_key(|(name, _)| ORDER.iter().position(|o| o == name));
    }
    let body: String = parts.into_iter().map(|(_, xml)| xml).collect();
    format!("<Media>{body}</Media>")
}

/// The `<Update>` of a Media notification: in Cisco's order (event, source, requestId, data,
/// as the Media notification page shows) or data first like the other notifications.
pub fn media_update(
    data: &str,
    event: &str,
    request_id: &str,
    source: &str,
    cisco_order: bool,
) -> String {
    if cisco_order {
        format!(
            "<Update><event>{}</event><source>{}</source><requestId>{}</requestId>\
             <data>{data}</data></Update>",
            esc(event),
            esc(source),
            esc(request_id)
        )
    } else {
        update(data, event, request_id, source)
    }
}

/// `<Dialog>` in the nonvoice shape.
pub fn dialog(d: &Dialog, mrd_name: &str) -> String {
    let mut vars = String::new();
    for (name, value) in &d.call_variables {
        let _ = write!(
            vars,
            "<CallVariable><name>{}</name><value>{}</value></CallVariable>",
            esc(name),
            esc(value)
        );
    }
    let actions: String = allowed_actions(&d.state)
        .iter()
        .map(|a| format!("<action>{a}</action>"))
        .collect();
    format!(
        "<Dialog><uri>/finesse/api/Dialog/{id}</uri><id>{id}</id>\
         <associatedDialogUri></associatedDialogUri><mediaType>{mt}</mediaType>\
         <mediaProperties><mediaId>{mrd}</mediaId><dialedNumber></dialedNumber>\
         <queueNumber>5301</queueNumber><queueName>{queue}</queueName>\
         <callKeyCallId>{call}</callKeyCallId><callKeySequenceNum>1</callKeySequenceNum>\
         <callKeyPrefix>{prefix}</callKeyPrefix><callvariables>{vars}</callvariables>\
         </mediaProperties><participants><Participant><actions>{actions}</actions>\
         <mediaAddress>{agent}</mediaAddress><startTime>{start}</startTime>\
         <state>{state}</state><stateCause>{cause}</stateCause>\
         <stateChangeTime>{changed}</stateChangeTime></Participant></participants>\
         <state>{state}</state></Dialog>",
        id = esc(&d.id),
        mt = esc(mrd_name),
        mrd = d.mrd,
        queue = esc(&d.queue_name),
        call = d.call_id,
        prefix = esc(d.id.split('_').next().unwrap_or("")),
        agent = esc(&d.agent),
        start = time(Some(d.start_time)),
        state = esc(&d.state),
        cause = esc(d.disposition.as_deref().unwrap_or("")),
        changed = time(Some(d.state_change_time)),
    )
}

/// The `<User>` object (the parts a task client reads).
pub fn user(agent: &Agent, login_name: &str, mrds: &[u32]) -> String {
    let media: String = mrds
        .iter()
        .map(|m| {
            format!(
                "<MediaUri>/finesse/api/User/{}/Media/{m}</MediaUri>",
                agent.id
            )
        })
        .collect();
    format!(
        "<User><uri>/finesse/api/User/{id}</uri><loginId>{id}</loginId><loginName>{name}</loginName>\
         <firstName>{first}</firstName><lastName>{last}</lastName><roles><role>Agent</role></roles>\
         <state>LOGOUT</state><extension></extension><mediaList>{media}</mediaList></User>",
        id = esc(&agent.id),
        name = esc(login_name),
        first = esc(&agent.first_name),
        last = esc(&agent.last_name),
    )
}

/// One node's address block in SystemInfo.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    /// Host name or address.
    pub host: String,
    /// REST port.
    pub https_port: u16,
    /// STARTTLS port.
    pub xmpp_port: u16,
    /// Direct-TLS port.
    pub xmpp_secure_port: u16,
}

/// `<SystemInfo>`.
pub fn system_info(
    status: &str,
    domain: &str,
    primary: &NodeAddr,
    secondary: Option<&NodeAddr>,
    with_ports: bool,
    maintenance: bool,
    sso: bool,
) -> String {
    let node = |tag: &str, n: &NodeAddr| {
        let ports = if with_ports {
            format!(
                "<httpsPort>{}</httpsPort><xmppPort>{}</xmppPort><xmppSecurePort>{}</xmppSecurePort>",
                n.https_port, n.xmpp_port, n.xmpp_secure_port
            )
        } else {
            String::new()
        };
        format!("<{tag}><host>{}</host>{ports}</{tag}>", esc(&n.host))
    };
    let reason = if status == "IN_SERVICE" {
        ""
    } else {
        "CTI connection lost"
    };
    format!(
        "<SystemInfo><uri>/finesse/api/SystemInfo</uri><currentTimestamp>{now}</currentTimestamp>\
         <deploymentType>UCCE</deploymentType><status>{status}</status><statusReason>{reason}</statusReason>\
         <ctiHeartbeatInterval>5</ctiHeartbeatInterval>{primary}{secondary}\
         <xmppDomain>{domain}</xmppDomain><xmppPubSubDomain>pubsub.{domain}</xmppPubSubDomain>\
         <systemAuthMode>{auth_mode}</systemAuthMode>{mmode}</SystemInfo>",
        auth_mode = if sso { "SSO" } else { "NON_SSO" },
        mmode = if with_ports {
            // 12.6 and later: the maintenance-mode fields.
            let (mode, time) = if maintenance {
                ("IN_PROGRESS", "3")
            } else {
                ("", "-1")
            };
            format!(
                "<finesseMMode>{mode}</finesseMMode><finesseTimeInMMode>{time}</finesseTimeInMMode>"
            )
        } else {
            String::new()
        },
        now = time(Some(SystemTime::now())),
        primary = node("primaryNode", primary),
        secondary = secondary
            .map(|s| node("secondaryNode", s))
            .unwrap_or_default(),
        domain = esc(domain),
    )
}

/// Fields of one ApiError.
#[derive(Debug, Clone)]
pub struct ApiError<'a> {
    /// ErrorData.
    pub data: &'a str,
    /// ErrorMedia (MRD id) or empty.
    pub media: &'a str,
    /// ErrorMessage.
    pub message: &'a str,
    /// ErrorType.
    pub error_type: &'a str,
}

/// The synchronous body: capitalised element names.
pub fn api_errors_sync(e: &ApiError) -> String {
    format!(
        "<ApiErrors><ApiError><ErrorData>{}</ErrorData><ErrorMedia>{}</ErrorMedia>\
         <ErrorMessage>{}</ErrorMessage><ErrorType>{}</ErrorType></ApiError></ApiErrors>",
        esc(e.data),
        esc(e.media),
        esc(e.message),
        esc(e.error_type)
    )
}

/// The asynchronous payload: lower-camel element names.
pub fn api_errors_async(e: &ApiError) -> String {
    format!(
        "<apiErrors><apiError><errorData>{}</errorData><errorMedia>{}</errorMedia>\
         <errorMessage>{}</errorMessage><errorType>{}</errorType></apiError></apiErrors>",
        esc(e.data),
        esc(e.media),
        esc(e.message),
        esc(e.error_type)
    )
}

/// The `<Update>` document a notification carries (before it is escaped into the stanza).
pub fn update(data: &str, event: &str, request_id: &str, source: &str) -> String {
    format!(
        "<Update><data>{data}</data><event>{}</event><requestId>{}</requestId>\
         <source>{}</source></Update>",
        esc(event),
        esc(request_id),
        esc(source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_in_updates() {
        let u = update("<x/>", "PUT", "a<b", "/s");
        assert!(u.contains("<requestId>a&lt;b</requestId>"));
    }
}
