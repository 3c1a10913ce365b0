//! `[media.orphan_probe]` as the daemon uses it: the probe URL [`Template`] (parsed once,
//! rendered per dialog with each value percent-encoded) and the validated [`ProbeConfig`] with
//! its method and action as types. The orphan guard runs the probes; this is only their
//! description.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::view::DialogView;
use std::path::Path;

use super::raw::RawProbe;
use super::{ConfigError, choice, err};

/// GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProbeMethod {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
}

/// What to do with a dialog whose session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeAction {
    /// Close it (ACCEPT first when it is offered).
    Close,
    /// Only report it (log, metric, event).
    Report,
}

impl ProbeAction {
    /// The metric label and event field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Report => "report",
        }
    }
}

/// Why a dialog's probe URL cannot be made; the probe is then skipped, never sent elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrenderable {
    /// The dialog lacks a call variable the template needs.
    #[error("the dialog lacks call variable {0}")]
    Missing(String),
    /// A value is `.` or `..`: URL parsers resolve it (even percent-encoded, as WHATWG's
    /// `%2e%2e`) as a step along the path, so it could reach another resource.
    #[error("the value of {0} is a dot segment")]
    DotSegment(String),
}

/// A value percent-encoded as one path segment, refused when it is a dot segment.
fn segment(field: &str, value: &str, out: &mut String) -> Result<(), Unrenderable> {
    if matches!(value, "." | "..") {
        return Err(Unrenderable::DotSegment(field.to_owned()));
    }
    out.extend(utf8_percent_encode(value, VALUE));
    Ok(())
}

/// Characters left as they are in a rendered value (RFC 3986 unreserved).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One piece of a URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text as written.
    Literal(String),
    /// `{id}`: the dialog id.
    Id,
    /// `{mediaId}`: the MRD id.
    MediaId,
    /// `{callvariable:NAME}`.
    CallVariable(String),
}

/// A parsed probe URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

impl Template {
    /// Parses `text`; an unknown or unclosed field is an error naming it, and so is any
    /// field before the path (in the scheme, userinfo, host or port), where a customer's
    /// value could choose where the probe goes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let path_start = text
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| text[start..].find(['/', '?', '#']).map(|j| start + j))
            .unwrap_or(text.len());
        if text[..path_start].contains('{') {
            return Err(format!(
                "{text:?}: fields are allowed only in the path and the query, \
                 not in the scheme, userinfo, host or port"
            ));
        }
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            if start > 0 {
                segments.push(Segment::Literal(rest[..start].to_owned()));
            }
            let Some(len) = rest[start..].find('}') else {
                return Err(format!("unclosed field in {text:?}"));
            };
            let field = &rest[start + 1..start + len];
            segments.push(match field {
                "id" => Segment::Id,
                "mediaId" => Segment::MediaId,
                f => match f.strip_prefix("callvariable:") {
                    Some(name) if !name.is_empty() => Segment::CallVariable(name.to_owned()),
                    _ => return Err(format!("unknown field {{{field}}}: use {{id}}, {{mediaId}} or {{callvariable:NAME}}")),
                },
            });
            rest = &rest[start + len + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Self(segments))
    }

    /// The URL for a dialog, each value percent-encoded as one path segment.
    pub fn render(&self, d: &DialogView) -> Result<String, Unrenderable> {
        let mut out = String::new();
        for s in &self.0 {
            match s {
                Segment::Literal(t) => out.push_str(t),
                Segment::Id => segment("id", &d.id, &mut out)?,
                Segment::MediaId => out.push_str(&d.media_id.to_string()),
                Segment::CallVariable(name) => {
                    let value = d
                        .call_variables
                        .get(name)
                        .ok_or_else(|| Unrenderable::Missing(name.clone()))?;
                    segment(name, value, &mut out)?;
                }
            }
        }
        Ok(out)
    }
}

/// What else a gone status must come with to count: something only the session service
/// sends, so that a proxy's default 404 never closes a live chat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GoneMarker {
    /// A header (lower-case name), with the value it must have if one was given.
    pub header: Option<(String, Option<String>)>,
    /// Text the body must contain (GET only; the first 64 KiB are read).
    pub body_contains: Option<String>,
    /// The operator accepts a bare status (`accept_bare_status = true`).
    pub bare_status: bool,
}

/// `Name` or `Name: value`.
fn header_marker(text: &str) -> Option<(String, Option<String>)> {
    let (name, value) = match text.split_once(':') {
        Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
        None => (text.trim(), None),
    };
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| (name.to_ascii_lowercase(), value.filter(|v| !v.is_empty())))
}

/// `[media.orphan_probe]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeConfig {
    /// The URL template.
    #[serde(skip)]
    pub url: Template,
    /// The template as written (for logs).
    #[serde(rename = "url")]
    pub url_text: String,
    /// GET or HEAD.
    pub method: ProbeMethod,
    /// Statuses that mean "gone" …
    pub gone_status: Vec<u16>,
    /// … when the answer also carries this marker.
    pub marker: GoneMarker,
    /// Consecutive gone answers needed.
    pub attempts: u32,
    /// Between attempts.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Per probe.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Close the dialog, or only report it.
    pub action: ProbeAction,
    /// Extra trust anchor (PEM).
    #[serde(rename = "ca_file", serialize_with = "super::print::present")]
    pub ca_pem: Option<Vec<u8>>,
    /// Probes in flight at most.
    pub max_in_flight: usize,
}

/// `media[i].orphan_probe`.
pub(super) fn check(f: &Path, i: usize, p: &RawProbe) -> Result<ProbeConfig, ConfigError> {
    let key = |k: &str| format!("media[{i}].orphan_probe.{k}");
    let url = Template::parse(&p.url).map_err(|e| err(f, key("url"), e))?;
    if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
        return Err(err(
            f,
            key("url"),
            format!("{:?} must start with http:// or https://", p.url),
        ));
    }
    let method = choice(
        f,
        &key("method"),
        &p.method,
        &[("GET", ProbeMethod::Get), ("HEAD", ProbeMethod::Head)],
    )?;
    if p.gone_status.is_empty() || p.gone_status.iter().any(|s| !(100..=599).contains(s)) {
        return Err(err(
            f,
            key("gone_status"),
            "needs HTTP statuses (100..=599)",
        ));
    }
    if p.attempts == 0 {
        return Err(err(f, key("attempts"), "must be at least 1"));
    }
    if p.timeout.is_zero() {
        return Err(err(f, key("timeout"), "must be above zero"));
    }
    if p.max_in_flight == 0 {
        return Err(err(f, key("max_in_flight"), "must be at least 1"));
    }
    let action = choice(
        f,
        &key("action"),
        &p.action,
        &[
            ("close", ProbeAction::Close),
            ("report", ProbeAction::Report),
        ],
    )?;
    let ca_pem = match &p.ca_file {
        None => None,
        Some(c) => Some(
            std::fs::read(c)
                .map_err(|e| err(f, key("ca_file"), format!("{}: {e}", c.display())))?,
        ),
    };
    let marker = GoneMarker {
        header: match p.gone_header.as_deref() {
            None => None,
            Some(h) => Some(header_marker(h).ok_or_else(|| {
                err(
                    f,
                    key("gone_header"),
                    format!("{h:?} is not \"Name\" or \"Name: value\""),
                )
            })?),
        },
        body_contains: p.gone_body_contains.clone().filter(|b| !b.is_empty()),
        bare_status: p.accept_bare_status,
    };
    if marker.body_contains.is_some() && method == ProbeMethod::Head {
        return Err(err(
            f,
            key("gone_body_contains"),
            "a HEAD answer has no body: use method = \"GET\" or gone_header",
        ));
    }
    if marker.header.is_none() && marker.body_contains.is_none() && !marker.bare_status {
        return Err(err(
            f,
            key("gone_status"),
            "a gone status alone could be a proxy's or load balancer's own 404, and would close \
             live chats: set gone_header or gone_body_contains to what only the session service \
             sends, or accept_bare_status = true to take that risk",
        ));
    }
    Ok(ProbeConfig {
        url,
        url_text: p.url.clone(),
        method,
        gone_status: p.gone_status.clone(),
        marker,
        attempts: p.attempts,
        interval: p.interval,
        timeout: p.timeout,
        action,
        ca_pem,
        max_in_flight: p.max_in_flight,
    })
}
