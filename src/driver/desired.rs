//! The desired READY/NOT_READY and routable flag the API set, kept in the state directory so
//! that a SIGHUP or a restart does not end an agent's break. File `desired-state`: a line per
//! MRD, `mrd state reason file_state file_reason` (`-` for no reason); the config file's own
//! value wins only when it changed since the line was written. File `unroutable`: the MRDs the
//! API made unroutable, one per line (the config has no routable setting; a sign-in lands
//! routable, and the resync then restores it). Both written by `Driver::store`
//! (atomically; a failed write is counted and shown).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tracing::{info, warn};

use super::Driver;
use crate::config::{DesiredState, MediaConfig};
use crate::vocab::StateRecord;

const DESIRED: &str = StateRecord::Desired.as_str();
const UNROUTABLE: &str = StateRecord::Unroutable.as_str();

/// The MRDs the API made unroutable, as recorded in `dir` (none without one).
pub(super) fn unroutable(dir: Option<&Path>) -> BTreeSet<u32> {
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join(UNROUTABLE)).ok()) else {
        return BTreeSet::new();
    };
    text.lines()
        .filter_map(|line| match line.trim().parse() {
            Ok(mrd) => Some(mrd),
            Err(_) => {
                warn!(line, "ignoring an unreadable line of the unroutable file");
                None
            }
        })
        .collect()
}

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
    /// Keeps what Finesse accepted for `mrd`'s routable flag, and records it.
    pub(super) fn want_routable(&mut self, mrd: u32, routable: bool) {
        let changed = if routable {
            self.unroutable.remove(&mrd)
        } else {
            self.unroutable.insert(mrd)
        };
        info!(mrd, routable, "desired routable flag set by the API");
        if changed {
            let text: String = self.unroutable.iter().map(|m| format!("{m}\n")).collect();
            self.store(StateRecord::Unroutable, Some(&text));
        }
    }

    /// Records every MRD whose desired state differs from the file's, atomically.
    pub(super) fn persist_desired(&self) {
        if self.cfg.state_dir.is_none() {
            return;
        }
        let mut text = String::new();
        for m in &self.cfg.media {
            let file = self.file_desired.get(&m.id).copied();
            if let Some((fs, fr)) = file.filter(|f| *f != (m.state, m.reason_code_id)) {
                let (r, fr) = (shown(m.reason_code_id), shown(fr));
                text.push_str(&format!("{} {} {r} {fs} {fr}\n", m.id, m.state));
            }
        }
        self.store(StateRecord::Desired, Some(&text));
    }
}
