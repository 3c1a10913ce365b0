//! RFC 7395 framing (XMPP over WebSocket), translated to and from the RFC 6120 byte stream
//! tokio-xmpp reads and writes, so that login, pings, detection and resync stay the same code
//! for both transports. Pure: no I/O; [`super::websocket`] moves the frames.
//!
//! - Out: the `<stream:stream …>` header becomes `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"
//!   to=… version="1.0"/>`, each top-level element one message (with `xmlns="jabber:client"`
//!   added where it relied on the stream's default namespace), `</stream:stream>` becomes
//!   `<close/>`; the XML declaration, comments and whitespace between stanzas are dropped.
//! - In: `<open/>` becomes a stream header with its `from`, `id`, `version` and `xml:lang`,
//!   `<close/>` the stream's end (its `see-other-uri`, if any, reported); anything else passes
//!   as it came, since stanzas in a message carry their namespaces.

/// The framing namespace.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// What the stream from the server brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Bytes for tokio-xmpp.
    Bytes(String),
    /// The server closed the stream (bytes for tokio-xmpp: the stream's end), possibly
    /// asking the client to reconnect to `see_other`.
    Closed {
        /// The stream footer to hand on.
        bytes: String,
        /// `see-other-uri`, when given.
        see_other: Option<String>,
    },
}

/// What tokio-xmpp wrote that is not XML a server could take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot frame the outgoing XML: {0}")]
pub struct FramingError(pub String);

/// Splits what tokio-xmpp writes into WebSocket messages.
#[derive(Debug, Default)]
pub struct Outgoing {
    buf: String,
}

/// One complete markup item at the start of some text.
enum Item<'a> {
    /// `<?…?>`, `<!--…-->`.
    Skip(usize),
    /// A start tag (`self_closing`), with its name, of `len` bytes.
    Start {
        name: &'a str,
        len: usize,
        self_closing: bool,
    },
    /// An end tag of `len` bytes.
    End { name: &'a str, len: usize },
}

/// The markup item at the start of `text` (which starts with `<`), or `None` when it is not
/// complete yet.
fn item(text: &str) -> Result<Option<Item<'_>>, FramingError> {
    if let Some(rest) = text.strip_prefix("<?") {
        return Ok(rest.find("?>").map(|i| Item::Skip(i + 4)));
    }
    if let Some(rest) = text.strip_prefix("<!--") {
        return Ok(rest.find("-->").map(|i| Item::Skip(i + 7)));
    }
    if text.starts_with("<!") {
        return Err(FramingError("CDATA or a DTD in the stream".into()));
    }
    // The tag ends at the first `>` outside quotes.
    let mut quote = None;
    let mut end = None;
    for (i, c) in text.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                end = Some(i);
                break;
            }
            (None, _) => {}
        }
    }
    let Some(end) = end else { return Ok(None) };
    let inner = &text[1..end];
    if let Some(name) = inner.strip_prefix('/') {
        return Ok(Some(Item::End {
            name: name.trim(),
            len: end + 1,
        }));
    }
    let self_closing = inner.ends_with('/');
    let name_end = inner
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(inner.len());
    Ok(Some(Item::Start {
        name: &inner[..name_end],
        len: end + 1,
        self_closing,
    }))
}

/// The value of attribute `name` in a start tag.
pub fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + name.len()..].trim_start();
        rest = &rest[i + name.len()..];
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let body = &value[1..];
        return body.find(quote).map(|end| &body[..end]);
    }
    None
}

/// `text` with `xmlns="jabber:client"` added to its top-level start tag when it has no
/// default namespace of its own.
fn with_client_namespace(element: &str, name: &str) -> String {
    let tag_end = element.find('>').unwrap_or(element.len());
    if name.contains(':') || attribute(&element[..tag_end], "xmlns").is_some() {
        return element.to_owned();
    }
    let at = 1 + name.len();
    format!("{} xmlns='jabber:client'{}", &element[..at], &element[at..])
}

impl Outgoing {
    /// Takes what tokio-xmpp wrote; gives the complete messages it holds, in order.
    pub fn push(&mut self, bytes: &str) -> Result<Vec<String>, FramingError> {
        self.buf.push_str(bytes);
        let mut frames = Vec::new();
        let mut pos = 0;
        'scan: loop {
            // Between top-level items only whitespace is allowed (keep-alives are dropped).
            let Some(lt) = self.buf[pos..].find('<') else {
                if !self.buf[pos..].trim().is_empty() {
                    return Err(FramingError("text outside any stanza".into()));
                }
                pos = self.buf.len();
                break;
            };
            if !self.buf[pos..pos + lt].trim().is_empty() {
                return Err(FramingError("text outside any stanza".into()));
            }
            let start = pos + lt;
            let Some(first) = item(&self.buf[start..])? else {
                pos = start;
                break;
            };
            match first {
                Item::Skip(len) => pos = start + len,
                Item::End { name, len } if name.ends_with(":stream") || name == "stream" => {
                    frames.push(format!("<close xmlns=\"{FRAMING}\"/>"));
                    pos = start + len;
                }
                Item::End { name, .. } => {
                    return Err(FramingError(format!("an unopened </{name}>")));
                }
                // A stream header, the first or a restart (after STARTTLS or SASL).
                Item::Start { name, len, .. } if name.ends_with(":stream") || name == "stream" => {
                    let tag = &self.buf[start..start + len];
                    let mut open = format!("<open xmlns=\"{FRAMING}\"");
                    for attr in ["to", "from", "version", "xml:lang", "id"] {
                        if let Some(v) = attribute(tag, attr) {
                            open.push_str(&format!(" {attr}=\"{v}\""));
                        }
                    }
                    open.push_str("/>");
                    frames.push(open);
                    pos = start + len;
                }
                Item::Start {
                    name,
                    len,
                    self_closing: true,
                } => {
                    frames.push(with_client_namespace(&self.buf[start..start + len], name));
                    pos = start + len;
                }
                Item::Start { name, len, .. } => {
                    let name = name.to_owned();
                    // Find where this element ends.
                    let mut depth = 1;
                    let mut at = start + len;
                    while depth > 0 {
                        let Some(lt) = self.buf[at..].find('<') else {
                            pos = start;
                            break 'scan;
                        };
                        at += lt;
                        match item(&self.buf[at..])? {
                            None => {
                                pos = start;
                                break 'scan;
                            }
                            Some(Item::Skip(len)) => at += len,
                            Some(Item::Start {
                                len, self_closing, ..
                            }) => {
                                depth += usize::from(!self_closing);
                                at += len;
                            }
                            Some(Item::End { len, .. }) => {
                                depth -= 1;
                                at += len;
                            }
                        }
                    }
                    frames.push(with_client_namespace(&self.buf[start..at], &name));
                    pos = at;
                }
            }
        }
        self.buf.drain(..pos);
        Ok(frames)
    }
}

/// Translates one message from the server.
pub fn incoming(message: &str) -> Incoming {
    let text = message.trim();
    let framing = text.contains(FRAMING);
    if framing && text.starts_with("<open") {
        let mut header = String::from(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams'",
        );
        for attr in ["from", "id", "version", "xml:lang"] {
            if let Some(v) = attribute(text, attr) {
                header.push_str(&format!(" {attr}=\"{v}\""));
            }
        }
        header.push('>');
        return Incoming::Bytes(header);
    }
    if framing && text.starts_with("<close") {
        return Incoming::Closed {
            bytes: "</stream:stream>".into(),
            see_other: attribute(text, "see-other-uri").map(str::to_owned),
        };
    }
    Incoming::Bytes(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='finesse.example' version='1.0'>";

    #[test]
    fn the_stream_header_becomes_open_and_stanzas_one_message_each() {
        let mut out = Outgoing::default();
        let frames = out.push(HEADER).unwrap();
        assert_eq!(
            frames,
            [format!(
                "<open xmlns=\"{FRAMING}\" to=\"finesse.example\" version=\"1.0\"/>"
            )]
        );
        let frames = out
            .push("<iq type='get' id='a1'><ping xmlns='urn:xmpp:ping'/></iq> \n<presence/>")
            .unwrap();
        assert_eq!(
            frames,
            [
                "<iq xmlns='jabber:client' type='get' id='a1'><ping xmlns='urn:xmpp:ping'/></iq>",
                "<presence xmlns='jabber:client'/>",
            ]
        );
        // The restart after SASL success is a new header, a new `<open/>`.
        let frames = out.push(HEADER).unwrap();
        assert!(frames[0].starts_with("<open "), "{frames:?}");
        let frames = out.push("</stream:stream>").unwrap();
        assert_eq!(frames, [format!("<close xmlns=\"{FRAMING}\"/>")]);
    }

    #[test]
    fn a_stanza_split_anywhere_comes_out_whole_once() {
        let stanza = "<message to='a@b' id='m&apos;1'><body>x &lt; y &gt; z</body>\
                      <x xmlns='urn:q' a='1>2'/></message>";
        for cut in 1..stanza.len() {
            let mut out = Outgoing::default();
            out.push(HEADER).unwrap();
            let mut frames = out.push(&stanza[..cut]).unwrap();
            frames.extend(out.push(&stanza[cut..]).unwrap());
            assert_eq!(frames.len(), 1, "cut at {cut}: {frames:?}");
            assert!(frames[0].starts_with("<message xmlns='jabber:client' to="));
            assert!(frames[0].ends_with("</message>"));
        }
    }

    #[test]
    fn elements_with_their_own_namespace_keep_it() {
        let mut out = Outgoing::default();
        out.push(HEADER).unwrap();
        let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGE=</auth>";
        assert_eq!(out.push(auth).unwrap(), [auth]);
    }

    #[test]
    fn text_outside_a_stanza_is_an_error() {
        let mut out = Outgoing::default();
        out.push(HEADER).unwrap();
        assert!(out.push("hello <presence/>").is_err());
    }

    #[test]
    fn open_and_close_from_the_server_become_the_stream_header_and_footer() {
        let open = format!(
            "<open xmlns=\"{FRAMING}\" from=\"finesse.example\" id=\"s1\" version=\"1.0\" xml:lang=\"en\"/>"
        );
        let Incoming::Bytes(header) = incoming(&open) else {
            panic!()
        };
        assert!(header.starts_with("<?xml version='1.0'?><stream:stream xmlns='jabber:client'"));
        assert!(
            header.contains(" from=\"finesse.example\" id=\"s1\" version=\"1.0\" xml:lang=\"en\">")
        );
        let close =
            format!("<close xmlns=\"{FRAMING}\" see-other-uri=\"wss://b.example:8445/ws/\"/>");
        assert_eq!(
            incoming(&close),
            Incoming::Closed {
                bytes: "</stream:stream>".into(),
                see_other: Some("wss://b.example:8445/ws/".into()),
            }
        );
        let features = "<features xmlns=\"http://etherx.jabber.org/streams\"/>";
        assert_eq!(incoming(features), Incoming::Bytes(features.into()));
    }
}
