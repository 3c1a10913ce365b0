//! The desired READY/NOT_READY the API set, kept in the state directory (file
//! `desired-state`, a line per MRD: `mrd state reason file_state file_reason`, `-` for no
//! reason) so that a SIGHUP or a restart does not end an agent's break. The config file's own
//! value wins only when it changed since the line was written. Written atomically
//! (`persist::write_atomic`).

use std::collections::BTreeMap;
use std::path::Path;

use tracing::{info, warn};

use super::Driver;
use crate::config::{DesiredState, MediaConfig};

const DESIRED: &str = "desired-state";

/// Per MRD: a desired state and its reason code.
pub(super) type Wanted = BTreeMap<u32, (DesiredState, Option<u32>)>;

fn reason(text: &str) -> Option<Option<u32>> {
    match text {
        "-" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

fn state(text: &str) -> Option<DesiredState> {
    DesiredState::CHOICES
        .iter()
        .find(|(s, _)| *s == text)
        .map(|(_, v)| *v)
}

fn shown(reason: Option<u32>) -> String {
    reason.map_or_else(|| "-".to_owned(), |r| r.to_string())
}

/// The file's own values, before any overlay.
pub(super) fn file_values(media: &[MediaConfig]) -> Wanted {
    media
        .iter()
        .map(|m| (m.id, (m.state, m.reason_code_id)))
        .collect()
}

/// Puts on `media` the states the API set, where the file's value has not changed since.
pub(super) fn overlay(dir: Option<&Path>, media: &mut [MediaConfig]) {
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join(DESIRED)).ok()) else {
        return;
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let parsed = match f.as_slice() {
            [mrd, s, r, fs, fr] => (|| {
                Some((
                    mrd.parse::<u32>().ok()?,
                    state(s)?,
                    reason(r)?,
                    state(fs)?,
                    reason(fr)?,
                ))
            })(),
            _ => None,
        };
        let Some((mrd, s, r, fs, fr)) = parsed else {
            warn!(
                line,
                "ignoring an unreadable line of the desired-state file"
            );
            continue;
        };
        if let Some(m) = media.iter_mut().find(|m| m.id == mrd) {
            if (m.state, m.reason_code_id) == (fs, fr) {
                m.state = s;
                m.reason_code_id = r;
                info!(mrd, state = %s, ?r, "desired state kept from the API");
            } else {
                info!(
                    mrd,
                    "the config file's state changed: it wins over the API's"
                );
            }
        }
    }
}

impl Driver {
    /// Records every MRD whose desired state differs from the file's, atomically.
    pub(super) fn persist_desired(&self) {
        let Some(dir) = self.cfg.state_dir.as_ref() else {
            return;
        };
        let mut text = String::new();
        for m in &self.cfg.media {
            let file = self.file_desired.get(&m.id).copied();
            if let Some((fs, fr)) = file.filter(|f| *f != (m.state, m.reason_code_id)) {
                let (r, fr) = (shown(m.reason_code_id), shown(fr));
                text.push_str(&format!("{} {} {r} {fs} {fr}\n", m.id, m.state));
            }
        }
        let file = dir.join(DESIRED);
        let written = super::persist::write_atomic(&file, &text);
        if let Err(e) = written {
            warn!(file = %file.display(), error = %e, "cannot record the desired state");
        }
    }
}
