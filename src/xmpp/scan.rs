//! What the server's byte stream says about itself, read as XML structure rather than by
//! searching for text: a lexer over the incoming bytes that knows start and end tags (with
//! quoted attributes), comments, CDATA, processing instructions and character data, and keeps
//! the element depth. It finds three things that tokio-xmpp does not report:
//!
//! - **a `conflict` stream error** of the stream itself: a `<stream:error>` that is a child of
//!   the stream root (depth 2), with a `<conflict/>` child. The same bytes inside a stanza, as
//!   another account can send them in a chat message, are deeper and never count;
//! - **a stanza over `max_stanza` bytes**, counted from its start tag to its end tag;
//! - **nesting deeper than [`MAX_DEPTH`]**, which no Finesse document needs.
//!
//! A `<stream:stream>` start tag between stanzas (depth 1, where only the server writes)
//! restarts the count, as a stream restart after STARTTLS or SASL does. Pure and incremental:
//! bytes may be fed split anywhere; memory is bounded (only a start tag's first
//! [`TAG_KEEP`] bytes are kept).

/// The deepest element nesting accepted (the stream root is depth 1, a stanza depth 2).
pub const MAX_DEPTH: u32 = 64;

/// How much of a start tag is kept to read its name and `xmlns`.
const TAG_KEEP: usize = 512;

/// What the scanner found that ends the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The server ended the stream with a `conflict` stream error: another session took our
    /// resource.
    Conflict,
    /// A stanza grew past `max_stanza` bytes.
    Oversize,
    /// Elements nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data.
    Text,
    /// Just after `<`.
    Open,
    /// In a start tag (`quote` while inside an attribute value).
    StartTag { quote: Option<u8> },
    /// In an end tag.
    EndTag,
    /// In `<!…`: a comment, CDATA or a declaration; `tail` holds the last bytes seen.
    Bang,
    /// In a comment, up to `-->`.
    Comment,
    /// In CDATA, up to `]]>`.
    Cdata,
    /// In `<?…?>`.
    Pi,
}

/// The incremental scanner of one connection's incoming bytes.
#[derive(Debug, Clone)]
pub struct Scanner {
    lex: Lex,
    depth: u32,
    /// The start tag being read (its first [`TAG_KEEP`] bytes).
    tag: Vec<u8>,
    /// The last three bytes, for the ends of comments and CDATA.
    tail: [u8; 3],
    /// Bytes of the stanza being read (depth ≥ 2).
    stanza: usize,
    max_stanza: usize,
    /// Inside a stream error of the stream itself.
    in_stream_error: bool,
    fault: Option<Fault>,
}

impl Scanner {
    /// A scanner for a new connection, refusing stanzas over `max_stanza` bytes.
    pub fn new(max_stanza: usize) -> Self {
        Self {
            lex: Lex::Text,
            depth: 0,
            tag: Vec::new(),
            tail: [0; 3],
            stanza: 0,
            max_stanza,
            in_stream_error: false,
            fault: None,
        }
    }

    /// The first fault found so far.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Reads `bytes`; returns the first fault found (then and on every later call).
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Fault> {
        for &b in bytes {
            if self.fault.is_some() {
                break;
            }
            if self.depth >= 2 {
                self.stanza += 1;
                if self.stanza > self.max_stanza {
                    self.fault = Some(Fault::Oversize);
                    break;
                }
            }
            self.tail = [self.tail[1], self.tail[2], b];
            self.step(b);
        }
        self.fault
    }

    fn step(&mut self, b: u8) {
        match self.lex {
            Lex::Text => {
                if b == b'<' {
                    self.lex = Lex::Open;
                    self.tag.clear();
                }
            }
            Lex::Open => match b {
                b'/' => self.lex = Lex::EndTag,
                b'!' => self.lex = Lex::Bang,
                b'?' => self.lex = Lex::Pi,
                _ => {
                    self.lex = Lex::StartTag { quote: None };
                    self.keep(b);
                }
            },
            Lex::StartTag { quote: Some(q) } => {
                self.keep(b);
                if b == q {
                    self.lex = Lex::StartTag { quote: None };
                }
            }
            Lex::StartTag { quote: None } => match b {
                b'"' | b'\'' => {
                    self.keep(b);
                    self.lex = Lex::StartTag { quote: Some(b) };
                }
                b'>' => {
                    self.lex = Lex::Text;
                    let empty = self.tag.last() == Some(&b'/');
                    self.start_tag(empty);
                }
                _ => self.keep(b),
            },
            Lex::EndTag => {
                if b == b'>' {
                    self.lex = Lex::Text;
                    self.end_tag();
                }
            }
            Lex::Bang => {
                if self.tail[1..] == *b"--" {
                    self.lex = Lex::Comment;
                } else if b == b'[' && self.tail[..2] == *b"TA" {
                    self.lex = Lex::Cdata;
                } else if b == b'>' {
                    self.lex = Lex::Text;
                }
            }
            Lex::Comment => {
                if self.tail == *b"-->" {
                    self.lex = Lex::Text;
                }
            }
            Lex::Cdata => {
                if self.tail == *b"]]>" {
                    self.lex = Lex::Text;
                }
            }
            Lex::Pi => {
                if self.tail[1..] == *b"?>" {
                    self.lex = Lex::Text;
                }
            }
        }
    }

    fn keep(&mut self, b: u8) {
        if self.tag.len() < TAG_KEEP {
            self.tag.push(b);
        }
    }

    /// The name of the start tag just read.
    fn name(&self) -> &[u8] {
        let end = self
            .tag
            .iter()
            .position(|c| c.is_ascii_whitespace() || *c == b'/' || *c == b'>')
            .unwrap_or(self.tag.len());
        &self.tag[..end]
    }

    fn start_tag(&mut self, empty: bool) {
        let name = self.name();
        let local = name.rsplit(|c| *c == b':').next().unwrap_or(name);
        // A stream header between stanzas (or the first one): the stream (re)starts.
        if self.depth <= 1 && local == b"stream" {
            self.depth = 1;
            self.stanza = 0;
            self.in_stream_error = false;
            return;
        }
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            self.fault = Some(Fault::TooDeep);
            return;
        }
        if depth == 2 {
            let streams_ns = contains(&self.tag, b"http://etherx.jabber.org/streams");
            self.in_stream_error = name == b"stream:error" || (local == b"error" && streams_ns);
        } else if depth == 3 && self.in_stream_error && local == b"conflict" {
            self.fault = Some(Fault::Conflict);
            return;
        }
        if empty {
            self.closed(depth);
        } else {
            self.depth = depth;
        }
    }

    fn end_tag(&mut self) {
        let depth = self.depth;
        self.depth = depth.saturating_sub(1);
        self.closed(depth);
    }

    /// An element at `depth` ended.
    fn closed(&mut self, depth: u32) {
        if depth == 2 {
            self.stanza = 0;
            self.in_stream_error = false;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='x' from='d' version='1.0'>";

    fn scan(parts: &[&[u8]]) -> Option<Fault> {
        let mut s = Scanner::new(1024);
        for p in parts {
            s.feed(p);
        }
        s.fault()
    }

    #[test]
    fn the_streams_own_conflict_error_is_one_and_split_anywhere_still_is() {
        let error: &[u8] = b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
            <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced</text></stream:error>";
        assert_eq!(scan(&[HEADER, error]), Some(Fault::Conflict));
        let all = [HEADER, error].concat();
        for cut in 0..all.len() {
            let (a, b) = all.split_at(cut);
            assert_eq!(scan(&[a, b]), Some(Fault::Conflict), "cut at {cut}");
        }
        // The RFC 7395 form: the error's namespace declared on the element itself.
        let ws: &[u8] = b"<error xmlns='http://etherx.jabber.org/streams'><conflict \
            xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>";
        assert_eq!(scan(&[HEADER, ws]), Some(Fault::Conflict));
    }

    #[test]
    fn the_same_bytes_inside_a_stanza_from_another_account_are_no_conflict() {
        let hostile: &[u8] = b"<message from='1001002@d/x' to='1001001@d/taskd' type='chat'>\
            <body>xmpp-streams &lt;conflict</body>\
            <stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
            <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
            <x a='&gt;<conflict' b=\"<stream:error>\"/><![CDATA[<stream:error><conflict/>]]>\
            <!-- <stream:error><conflict/> --></message>";
        assert_eq!(scan(&[HEADER, hostile]), None);
        // Nor does a stream header smuggled into a stanza restart the count.
        let smuggled: &[u8] = b"<message><stream:stream><stream:error><conflict/></stream:error>\
            </stream:stream></message>";
        assert_eq!(scan(&[HEADER, smuggled]), None);
        // A stream restart (after SASL) between stanzas does.
        let restart = [
            HEADER,
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
            HEADER,
        ];
        let mut parts = restart.to_vec();
        parts.push(b"<stream:error><conflict/></stream:error>");
        assert_eq!(scan(&parts), Some(Fault::Conflict));
    }

    #[test]
    fn a_stanza_over_the_cap_is_oversize_and_whitespace_between_stanzas_is_not_counted() {
        let mut big = b"<message><body>".to_vec();
        big.extend(std::iter::repeat_n(b'x', 2000));
        assert_eq!(scan(&[HEADER, &big]), Some(Fault::Oversize));
        let mut small = Vec::new();
        for _ in 0..100 {
            small.extend_from_slice(b"<message><body>hello</body></message>   ");
        }
        assert_eq!(scan(&[HEADER, &small]), None, "many small stanzas");
    }

    #[test]
    fn nesting_past_the_bound_is_too_deep() {
        let deep: Vec<u8> = [HEADER.to_vec(), b"<a>".repeat(MAX_DEPTH as usize)].concat();
        assert_eq!(scan(&[&deep]), Some(Fault::TooDeep));
        let ok: Vec<u8> = [
            HEADER.to_vec(),
            b"<a>".repeat(MAX_DEPTH as usize - 2),
            b"</a>".repeat(MAX_DEPTH as usize - 2),
        ]
        .concat();
        assert_eq!(scan(&[&ok]), None);
    }
}
