//! Reading the flat PUT bodies the simulated REST API accepts (`<Media>`, `<Dialog>`): the
//! root checked, each direct child's text by local name, malformed XML and DOCTYPE refused.

use std::collections::HashMap;

use quick_xml::events::Event;

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
}
