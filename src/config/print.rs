//! How the validated configuration prints: serde helpers for the fields whose value is not
//! shown as it is held (a CA as whether one is set, a mode in octal, a group by name), and
//! [`tables`], which turns the dotted keys the fields serialize under (`finesse.nodes`) into
//! the file's tables again.

use serde::Serializer;
use serde_json::{Map, Value};

/// `Some(_)` as `true`: a CA's bytes are not worth printing.
pub(super) fn present<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.is_some())
}

/// URLs as their text.
pub(super) fn urls<S: Serializer>(v: &[reqwest::Url], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(reqwest::Url::as_str))
}

/// A file mode as `0660`.
pub(super) fn octal<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:04o}"))
}

/// A group by its name.
pub(super) fn group<S: Serializer>(v: &Option<(String, u32)>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some((name, _)) => s.serialize_some(name),
        None => s.serialize_none(),
    }
}

/// The top level of `flat`, with each `table.key` moved into its table (tables merge).
pub(super) fn tables(flat: Value) -> Value {
    let Value::Object(map) = flat else {
        return flat;
    };
    let mut out = Map::new();
    for (key, value) in map {
        match key.split_once('.') {
            Some((table, inner)) => {
                let slot = out
                    .entry(table.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(t) = slot {
                    t.insert(inner.to_owned(), value);
                }
            }
            None => match (out.get_mut(&key), value) {
                (Some(Value::Object(t)), Value::Object(more)) => t.extend(more),
                (_, value) => {
                    out.insert(key, value);
                }
            },
        }
    }
    Value::Object(out)
}

/// Every leaf of `v` under its dotted path (`media[0].state`, `xmpp.ping_interval`).
pub(super) fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, x, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object()) => {
            for (i, x) in a.iter().enumerate() {
                leaves(&format!("{prefix}[{i}]"), x, out);
            }
            if a.is_empty() {
                out.push((prefix.to_owned(), v.clone()));
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}
