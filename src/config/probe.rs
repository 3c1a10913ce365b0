//! `[media.orphan_probe]` as the daemon uses it: the probe URL [`Template`] (parsed once,
//! rendered per dialog with each value percent-encoded) and the validated [`ProbeConfig`] with
//! its method and action as types. The orphan guard runs the probes; this is only their
//! description.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::view::DialogView;

/// GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
}

/// What to do with a dialog whose session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Parses `text`; an unknown or unclosed field is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
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

    /// The URL for a dialog; `None` when it lacks a call variable the template needs.
    pub fn render(&self, d: &DialogView) -> Option<String> {
        let mut out = String::new();
        for s in &self.0 {
            match s {
                Segment::Literal(t) => out.push_str(t),
                Segment::Id => out.extend(utf8_percent_encode(&d.id, VALUE)),
                Segment::MediaId => out.push_str(&d.media_id.to_string()),
                Segment::CallVariable(name) => {
                    out.extend(utf8_percent_encode(d.call_variables.get(name)?, VALUE))
                }
            }
        }
        Some(out)
    }
}

/// `[media.orphan_probe]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// The URL template.
    pub url: Template,
    /// The template as written (for logs).
    pub url_text: String,
    /// GET or HEAD.
    pub method: ProbeMethod,
    /// Statuses that mean "gone".
    pub gone_status: Vec<u16>,
    /// Consecutive gone answers needed.
    pub attempts: u32,
    /// Between attempts.
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Close the dialog, or only report it.
    pub action: ProbeAction,
    /// Extra trust anchor (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Probes in flight at most.
    pub max_in_flight: usize,
}
