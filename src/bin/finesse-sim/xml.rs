//! The simulator's own XML, written by hand from the facts file's shapes (it shares nothing
//! with the daemon's model), and a small reader for the flat PUT bodies it accepts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use quick_xml::events::Event;

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
    let mut s = format!(
        "<Media><uri>/finesse/api/User/{agent}/Media/{mrd_id}</uri><id>{mrd_id}</id>\
         <name>{}</name><description>{}</description><interruptible>{}</interruptible>",
        esc(&mrd.name),
        esc(&mrd.name),
        mrd.interruptible
    );
    if let Some(v) = view {
        let interrupt = if shape.ignore_when_not_interruptible && !mrd.interruptible {
            "IGNORE"
        } else {
            v.settings.interrupt_action.as_str()
        };
        let interrupt = if shape.no_interrupt_action {
            String::new()
        } else {
            format!("<interruptAction>{}</interruptAction>", esc(interrupt))
        };
        let _ = write!(
            s,
            "<maxDialogLimit>{}</maxDialogLimit>{interrupt}\
             <dialogLogoutAction>{}</dialogLogoutAction><routable>{}</routable>\
             <state>{}</state><reasonCodeId>{}</reasonCodeId>",
            v.settings.max_dialog_limit,
            esc(&v.settings.dialog_logout_action),
            v.routable,
            esc(&v.state),
            opt(v.reason_code_id),
        );
        if let Some(id) = v.reason_code_id {
            let category = if v.state == "LOGOUT" {
                "LOGOUT"
            } else {
                "NOT_READY"
            };
            let _ = write!(
                s,
                "<ReasonCode><category>{category}</category><code>{id}</code>\
                 <forAll>true</forAll><id>{id}</id><label>Reason {id}</label>\
                 <uri>/finesse/api/ReasonCode/{id}</uri></ReasonCode>"
            );
        }
        let _ = write!(
            s,
            "<stateChangeTime>{}</stateChangeTime>",
            time(v.state_change_time)
        );
    }
    s.push_str("</Media>");
    s
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
pub fn user(agent: &Agent, mrds: &[u32]) -> String {
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
        "<User><uri>/finesse/api/User/{id}</uri><loginId>{id}</loginId><loginName>{id}</loginName>\
         <firstName>{first}</firstName><lastName>{last}</lastName><roles><role>Agent</role></roles>\
         <state>LOGOUT</state><extension></extension><mediaList>{media}</mediaList></User>",
        id = esc(&agent.id),
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
         <systemAuthMode>NON_SSO</systemAuthMode>{mmode}</SystemInfo>",
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

/// Reads a flat PUT body such as `<Media><state>READY</state></Media>`: checks the root name
/// and returns the text of each direct child by local name. Malformed XML is an error.
pub fn read_fields(body: &str, root: &str) -> Result<HashMap<String, String>, String> {
    let mut reader = quick_xml::Reader::from_str(body);
    reader.config_mut().trim_text(true);
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut fields = HashMap::new();
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Err(e) => return Err(format!("malformed XML: {e}")),
            Ok(Event::Eof) => break,
            Ok(Event::DocType(_)) => return Err("DOCTYPE is not allowed".into()),
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_owned();
                depth += 1;
                if depth == 1 {
                    if name != root {
                        return Err(format!("expected <{root}>, found <{name}>"));
                    }
                    saw_root = true;
                } else if depth == 2 {
                    fields.insert(name.clone(), String::new());
                    current = Some(name);
                }
            }
            Ok(Event::Empty(e)) => {
                let name = e.local_name().as_ref().to_owned();
                if depth == 0 {
                    if name != root {
                        return Err(format!("expected <{root}>, found <{name}>"));
                    }
                    saw_root = true;
                } else if depth == 1 {
                    fields.insert(name, String::new());
                }
            }
            Ok(Event::Text(t)) if depth == 2 => {
                if let Some(name) = &current {
                    fields
                        .entry(name.clone())
                        .or_default()
                        .push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) if depth == 2 => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match r.xml10_content().as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity &{other};")),
                    },
                };
                if let Some(name) = &current {
                    fields.entry(name.clone()).or_default().push(c);
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if depth < 2 {
                    current = None;
                }
            }
            Ok(_) => {}
        }
    }
    if depth != 0 {
        return Err("truncated XML".into());
    }
    if !saw_root {
        return Err(format!("expected <{root}>"));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_sign_in_body() {
        let body = "<Media><state>LOGIN</state><maxDialogLimit>3</maxDialogLimit>\
                    <interruptAction>ACCEPT</interruptAction></Media>";
        let f = read_fields(body, "Media").unwrap();
        assert_eq!(f["state"], "LOGIN");
        assert_eq!(f["maxDialogLimit"], "3");
        assert!(!f.contains_key("dialogLogoutAction"));
    }

    #[test]
    fn rejects_wrong_root_truncation_and_doctype() {
        assert!(read_fields("<Dialog><state>READY</state></Dialog>", "Media").is_err());
        assert!(read_fields("<Media><state>READY</sta", "Media").is_err());
        assert!(read_fields("<!DOCTYPE x [<!ENTITY a 'b'>]><Media/>", "Media").is_err());
    }

    #[test]
    fn escapes_text_in_updates() {
        let u = update("<x/>", "PUT", "a<b", "/s");
        assert!(u.contains("<requestId>a&lt;b</requestId>"));
    }
}
