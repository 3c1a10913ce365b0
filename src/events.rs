//! The event stream the task application reads: every change of the agent's view as one JSON
//! object with a monotonic `seq`, kept in a bounded ring (for `Last-Event-ID` resumes) and
//! fanned out to live subscribers. Event ids are `<boot>-<seq>`, the boot being random per
//! process start, so a resume from before the ring's oldest entry, from another run of the
//! daemon (sequence numbers start again at 1), or from ahead of the newest event gets
//! `resync.required` instead of a silent gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::vocab::EventKind;

/// One event: its sequence number and its JSON text (with `seq` and `type` inside).
#[derive(Debug, Clone)]
pub struct Event {
    /// Monotonic, from 1.
    pub seq: u64,
    /// The serialized object.
    pub json: Arc<str>,
}

/// The bus.
pub struct EventBus {
    boot: String,
    ring: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
    capacity: usize,
}

/// What a (re)connecting client gets first.
pub enum Replay {
    /// The events after the given id, all still in the ring.
    Events(Vec<Event>),
    /// The ring no longer holds them: the client must refetch `/v1/state`.
    ResyncRequired {
        /// The oldest seq still held.
        oldest: u64,
    },
}

impl EventBus {
    /// A bus keeping `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            boot: format!("{:08x}", rand::random::<u32>()),
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            tx,
            capacity,
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event of `kind` with `data`'s fields.
    pub fn publish(&self, kind: EventKind, data: Value) -> u64 {
        let mut ring = self.ring();
        let seq = ring.back().map_or(1, |e| e.seq + 1);
        let mut obj = json!({ "seq": seq, "type": kind });
        if let (Some(o), Value::Object(d)) = (obj.as_object_mut(), data) {
            o.extend(d);
        }
        let event = Event {
            seq,
            json: Arc::from(obj.to_string()),
        };
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        // Sent under the ring lock, so subscribers see events in seq order.
        let _ = self.tx.send(event);
        seq
    }

    /// The id of event `seq` (`<boot>-<seq>`), as sent in SSE `id:` lines.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.boot)
    }

    /// Subscribes, and returns what to replay after the event id `last_id` (None: nothing to
    /// replay).
    pub fn subscribe(&self, last_id: Option<&str>) -> (Replay, broadcast::Receiver<Event>) {
        let ring = self.ring();
        let rx = self.tx.subscribe();
        let oldest = ring.front().map_or(1, |e| e.seq);
        let newest = ring.back().map_or(0, |e| e.seq);
        let ours = |id: &str| {
            let (boot, seq) = id.trim().split_once('-')?;
            (boot == self.boot).then(|| seq.parse::<u64>().ok())?
        };
        let replay = match last_id.map(ours) {
            None => Replay::Events(Vec::new()),
            Some(Some(last)) if last <= newest && (last + 1 >= oldest || last == newest) => {
                Replay::Events(ring.iter().filter(|e| e.seq > last).cloned().collect())
            }
            // Another run's id, one ahead of the newest, or one the ring no longer reaches.
            Some(_) => Replay::ResyncRequired { oldest },
        };
        (replay, rx)
    }

    /// The newest seq (0 before any event).
    pub fn last_seq(&self) -> u64 {
        self.ring().back().map_or(0, |e| e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_are_monotonic_and_carry_type_and_fields() {
        let bus = EventBus::new(4);
        assert_eq!(
            bus.publish(EventKind::Phase, json!({ "phase": "steady" })),
            1
        );
        assert_eq!(bus.publish(EventKind::LinkUp, json!({ "link": "xmpp" })), 2);
        let (Replay::Events(ev), _) = bus.subscribe(Some(&bus.event_id(0))) else {
            panic!("events")
        };
        let v: Value = serde_json::from_str(&ev[1].json).unwrap();
        assert_eq!(v, json!({ "seq": 2, "type": "link.up", "link": "xmpp" }));
    }

    #[test]
    fn a_resume_inside_the_ring_replays_and_one_before_it_requires_a_resync() {
        let bus = EventBus::new(4);
        for i in 0..10 {
            bus.publish(EventKind::Phase, json!({ "i": i }));
        }
        let (Replay::Events(ev), _) = bus.subscribe(Some(&bus.event_id(7))) else {
            panic!("replay")
        };
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![8, 9, 10]);
        assert!(matches!(
            bus.subscribe(Some(&bus.event_id(2))).0,
            Replay::ResyncRequired { oldest: 7 }
        ));
        assert!(
            matches!(bus.subscribe(Some(&bus.event_id(10))).0, Replay::Events(e) if e.is_empty())
        );
    }

    #[test]
    fn an_id_from_another_run_or_from_the_future_requires_a_resync() {
        let bus = EventBus::new(8);
        for i in 0..3 {
            bus.publish(EventKind::Phase, json!({ "i": i }));
        }
        let before_restart = EventBus::new(8);
        for id in [
            before_restart.event_id(2),
            "2".to_owned(),
            bus.event_id(4),
            "garbage".to_owned(),
        ] {
            assert!(
                matches!(
                    bus.subscribe(Some(&id)).0,
                    Replay::ResyncRequired { oldest: 1 }
                ),
                "{id}"
            );
        }
        assert_ne!(bus.event_id(1), before_restart.event_id(1), "boots differ");
        assert!(
            matches!(bus.subscribe(Some(&bus.event_id(0))).0, Replay::Events(e) if e.len() == 3)
        );
    }

    #[tokio::test]
    async fn live_subscribers_get_new_events_in_order() {
        let bus = EventBus::new(8);
        let (_, mut rx) = bus.subscribe(None);
        bus.publish(EventKind::Phase, json!({}));
        bus.publish(EventKind::LinkUp, json!({}));
        let kind = |e: Event| serde_json::from_str::<Value>(&e.json).unwrap()["type"].clone();
        assert_eq!(kind(rx.recv().await.unwrap()), "phase");
        assert_eq!(kind(rx.recv().await.unwrap()), "link.up");
    }
}
