//! A small pull reader over quick-xml for Finesse documents. It walks one element's children
//! by local name (compared without regard to ASCII case, so `Dialog` and `dialog` are one),
//! reads text with the predefined entities and character references resolved, skips what the
//! caller does not know, and refuses a DOCTYPE or an unknown entity instead of expanding it.
//! It borrows from the input and allocates only the text the caller keeps: this is the hot
//! path of every notification.

use quick_xml::Reader;
use quick_xml::events::Event;

/// Why a document could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed {what}: {message}")]
pub struct XmlError {
    /// The document kind.
    pub what: &'static str,
    /// The parser's message.
    pub message: String,
}

/// Reads a whole document whose root is one of `roots` with `read`.
pub(crate) fn parse<T>(
    what: &'static str,
    roots: &[&str],
    xml: &str,
    read: impl FnOnce(&mut Pull<'_>) -> Result<T, XmlError>,
) -> Result<T, XmlError> {
    let mut p = Pull::new(what, xml);
    p.root(roots)?;
    read(&mut p)
}

/// Reads one document.
pub(crate) struct Pull<'a> {
    reader: Reader<&'a [u8]>,
    what: &'static str,
}

/// True when an element's local name is `want`, ignoring ASCII case.
pub(crate) fn is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

impl<'a> Pull<'a> {
    /// A reader over `xml`, naming the document kind `what` in its errors.
    pub(crate) fn new(what: &'static str, xml: &'a str) -> Self {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().expand_empty_elements = true;
        Self { reader, what }
    }

    /// An error at the reader's position.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> XmlError {
        XmlError {
            what: self.what,
            message: format!("{message} (at byte {})", self.reader.buffer_position()),
        }
    }

    fn next(&mut self) -> Result<Event<'a>, XmlError> {
        match self.reader.read_event() {
            Ok(Event::DocType(_)) => Err(self.error("DOCTYPE/ENTITY declarations are refused")),
            Ok(ev) => Ok(ev),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Opens the root element, which must be one of `names`.
    pub(crate) fn root(&mut self, names: &[&str]) -> Result<(), XmlError> {
        loop {
            match self.next()? {
                Event::Start(e) => {
                    let local = e.local_name();
                    if names.iter().any(|n| is(local.as_ref(), n)) {
                        return Ok(());
                    }
                    let found = local.as_ref().to_owned();
                    return Err(self.error(format_args!(
                        "expected <{}>, found <{found}>",
                        names.join("> or <")
                    )));
                }
                Event::Text(t) if t.trim().is_empty() => {}
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(self.error("no root element")),
                _ => return Err(self.error("content before the root element")),
            }
        }
    }

    /// Visits the current element's child elements until its end tag. `f` gets each child's
    /// local name and either reads the child whole (returning true) or leaves it (false),
    /// and then it is skipped. Text between children is ignored.
    pub(crate) fn children(
        &mut self,
        mut f: impl FnMut(&mut Self, &str) -> Result<bool, XmlError>,
    ) -> Result<(), XmlError> {
        loop {
            match self.next()? {
                // `f` runs in the guard: a child it did not read is skipped here.
                Event::Start(e) if !f(self, e.local_name().as_ref())? => self.skip()?,
                Event::End(_) => return Ok(()),
                Event::Eof => return Err(self.error("unexpected end of document")),
                Event::GeneralRef(r) => {
                    self.entity(&r)?;
                }
                _ => {}
            }
        }
    }

    /// Reads the current element's text up to its end tag (nested elements are skipped).
    pub(crate) fn text(&mut self) -> Result<String, XmlError> {
        let mut out: Option<String> = None;
        loop {
            match self.next()? {
                Event::Text(t) => push(&mut out, t.into_inner()),
                Event::CData(c) => push(&mut out, c.into_inner()),
                Event::GeneralRef(r) => {
                    let s = self.entity(&r)?;
                    push(&mut out, s.into());
                }
                Event::Start(_) => self.skip()?,
                Event::End(_) => return Ok(out.unwrap_or_default()),
                Event::Eof => return Err(self.error("unexpected end of document")),
                _ => {}
            }
        }
    }

    /// Reads a list element: each child named `item` is read by `read`, the others skipped.
    pub(crate) fn list<T>(
        &mut self,
        item: &str,
        mut read: impl FnMut(&mut Self) -> Result<T, XmlError>,
    ) -> Result<Vec<T>, XmlError> {
        let mut out = Vec::new();
        self.children(|p, name| {
            if !is(name, item) {
                return Ok(false);
            }
            out.push(read(p)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Reads an element whose children are all text fields: each child named in `slots`
    /// fills its slot, the others are skipped.
    pub(crate) fn fields(&mut self, slots: &mut [(&str, &mut dyn Slot)]) -> Result<(), XmlError> {
        self.children(|p, name| {
            let Some((_, slot)) = slots.iter_mut().find(|(n, _)| is(name, n)) else {
                return Ok(false);
            };
            slot.fill(p.text()?);
            Ok(true)
        })
    }

    /// Skips the rest of the current element.
    pub(crate) fn skip(&mut self) -> Result<(), XmlError> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Event::Start(_) => depth += 1,
                Event::End(_) if depth == 0 => return Ok(()),
                Event::End(_) => depth -= 1,
                Event::GeneralRef(r) => {
                    self.entity(&r)?;
                }
                Event::Eof => return Err(self.error("unexpected end of document")),
                _ => {}
            }
        }
    }

    /// Resolves `&name;` or `&#n;`; any other entity is an error.
    fn entity(&self, r: &quick_xml::events::BytesRef<'_>) -> Result<String, XmlError> {
        match r.resolve_char_ref() {
            Ok(Some(c)) => return Ok(c.to_string()),
            Ok(None) => {}
            Err(e) => return Err(self.error(e)),
        }
        let name: &str = r;
        quick_xml::escape::resolve_predefined_entity(name)
            .map(str::to_owned)
            .ok_or_else(|| self.error(format_args!("unknown entity &{name};")))
    }
}

/// A text field: a `String`, or an `Option<String>` that records presence.
pub(crate) trait Slot {
    /// Stores the element's text.
    fn fill(&mut self, text: String);
}

impl Slot for String {
    fn fill(&mut self, text: String) {
        *self = text;
    }
}

impl Slot for Option<String> {
    fn fill(&mut self, text: String) {
        *self = Some(text);
    }
}

fn push(out: &mut Option<String>, s: std::borrow::Cow<'_, str>) {
    match out {
        None => *out = Some(s.into_owned()),
        Some(o) => o.push_str(&s),
    }
}
