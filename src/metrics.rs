//! Prometheus metrics (prometheus-client), rendered as OpenMetrics text. Counters are bumped
//! where things happen; the gauges (links, phase, dialogs) are set at scrape time from the
//! plain values the caller takes from the published state ([`Gauges`]), so they can never
//! disagree with `/v1/state`.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::vocab::{Cause, Phase, ReconnectScope, SigninReason, StateRecord};

/// The values the gauges show, read from the published state at scrape time.
#[derive(Debug, Clone)]
pub struct Gauges<'a> {
    /// The REST link is up.
    pub rest_up: bool,
    /// The XMPP link is up.
    pub xmpp_up: bool,
    /// The current phase.
    pub phase: Phase,
    /// Each held dialog's MRD and state.
    pub dialogs: Vec<(u32, &'a str)>,
    /// Each MRD: (id, eligible, persistent drift, sign-in refused).
    pub media: Vec<(u32, bool, bool, bool)>,
    /// The state directory's records whose last write failed.
    pub failing_records: Vec<StateRecord>,
}

/// What became of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    /// Applied to the view.
    Applied,
    /// Read while setting up a session, applied after.
    Buffered,
    /// Could not be decoded.
    Malformed,
    /// A pubsub event from someone other than the pubsub service (dropped).
    Spoofed,
}

impl NotificationResult {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Buffered => "buffered",
            Self::Malformed => "malformed",
            Self::Spoofed => "spoofed",
        }
    }
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    link_up: Family<Labels, Gauge>,
    phase: Family<Labels, Gauge>,
    dialogs: Family<Labels, Gauge>,
    reconnects: Family<Labels, Counter>,
    failovers: Counter,
    resyncs: Counter,
    signins: Family<Labels, Counter>,
    time_to_ready: Histogram,
    notifications: Family<Labels, Counter>,
    auth_failures: Counter,
    sso_refreshes: Family<Labels, Counter>,
    orphans: Family<Labels, Counter>,
    xmpp_round_trips: Counter,
    xmpp_pings: Counter,
    media_eligible: Family<Labels, Gauge>,
    drift_persistent: Family<Labels, Gauge>,
    signin_refused: Family<Labels, Gauge>,
    state_writes_failed: Family<Labels, Counter>,
    state_write_failing: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("finesse_taskd");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            link_up: Family::default(),
            phase: Family::default(),
            dialogs: Family::default(),
            reconnects: Family::default(),
            failovers: Counter::default(),
            resyncs: Counter::default(),
            signins: Family::default(),
            time_to_ready: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            notifications: Family::default(),
            auth_failures: Counter::default(),
            sso_refreshes: Family::default(),
            orphans: Family::default(),
            xmpp_round_trips: Counter::default(),
            xmpp_pings: Counter::default(),
            media_eligible: Family::default(),
            drift_persistent: Family::default(),
            signin_refused: Family::default(),
            state_writes_failed: Family::default(),
            state_write_failing: Family::default(),
        };
        r.register("link_up", "1 while the link is up", m.link_up.clone());
        r.register("phase", "1 for the current phase", m.phase.clone());
        r.register(
            "dialogs",
            "Dialogs held, by MRD and state",
            m.dialogs.clone(),
        );
        r.register(
            "reconnects",
            "Recoveries started after a loss",
            m.reconnects.clone(),
        );
        r.register(
            "sso_refreshes",
            "SSO token refreshes, by outcome (ok, refused, expired, failed)",
            m.sso_refreshes.clone(),
        );
        r.register(
            "failovers",
            "Switches to the other node",
            m.failovers.clone(),
        );
        r.register("resyncs", "Completed resyncs", m.resyncs.clone());
        r.register(
            "signins",
            "Sign-in requests sent, by reason",
            m.signins.clone(),
        );
        r.register(
            "time_to_ready_seconds",
            "From failure detected to steady",
            m.time_to_ready.clone(),
        );
        r.register(
            "notifications",
            "Notifications, by result",
            m.notifications.clone(),
        );
        r.register(
            "auth_failures",
            "Rejected credentials",
            m.auth_failures.clone(),
        );
        r.register(
            "orphans",
            "Dialogs whose session was gone, by MRD and action",
            m.orphans.clone(),
        );
        r.register(
            "xmpp_round_trips",
            "XMPP round trips waited for (TCP, TLS, stream set-up, IQs)",
            m.xmpp_round_trips.clone(),
        );
        r.register(
            "media_eligible",
            "1 when the agent is in a skill group of the MRD (only then is it signed in)",
            m.media_eligible.clone(),
        );
        r.register(
            "drift_persistent",
            "1 when a settings correction did not take on the MRD",
            m.drift_persistent.clone(),
        );
        r.register(
            "signin_refused",
            "1 while Finesse refuses the MRD's sign-in",
            m.signin_refused.clone(),
        );
        r.register(
            "xmpp_pings",
            "Client pings sent (one every ping_interval, whatever arrives)",
            m.xmpp_pings.clone(),
        );
        r.register(
            "state_writes_failed",
            "Writes to the state directory that failed, by record",
            m.state_writes_failed.clone(),
        );
        r.register(
            "state_write_failing",
            "1 while the record's last write to the state directory failed",
            m.state_write_failing.clone(),
        );
        if let Ok(mut slot) = m.registry.lock() {
            *slot = r;
        }
        m
    }

    /// The XMPP round-trip counter, for the connector to bump.
    pub fn xmpp_round_trips(&self) -> Counter {
        self.xmpp_round_trips.clone()
    }

    /// The client-ping counter, for the link to bump.
    pub fn xmpp_pings(&self) -> Counter {
        self.xmpp_pings.clone()
    }

    /// A recovery started after `cause` on `scope`.
    pub fn reconnect(&self, scope: ReconnectScope, cause: Cause) {
        self.reconnects
            .get_or_create(&labels(&[
                ("link", scope.as_str()),
                ("cause", cause.as_str()),
            ]))
            .inc();
    }
    /// A failover.
    pub fn failover(&self) {
        self.failovers.inc();
    }
    /// A completed resync.
    pub fn resync(&self) {
        self.resyncs.inc();
    }
    /// A sign-in sent: initial, drift, logout or failover.
    pub fn signin(&self, reason: SigninReason) {
        self.signins
            .get_or_create(&labels(&[("reason", reason.as_str())]))
            .inc();
    }
    /// Steady again, `seconds` after the failure was detected.
    pub fn ready_after(&self, seconds: f64) {
        self.time_to_ready.observe(seconds);
    }
    /// A notification applied, buffered or malformed.
    pub fn notification(&self, result: NotificationResult) {
        self.notifications
            .get_or_create(&labels(&[("result", result.as_str())]))
            .inc();
    }
    /// An orphan dialog found; `action` is close or report.
    pub fn orphan(&self, media: &str, action: &str) {
        self.orphans
            .get_or_create(&labels(&[("media", media), ("action", action)]))
            .inc();
    }
    /// An SSO token refresh ended with `outcome`.
    pub fn sso_refresh(&self, outcome: &str) {
        self.sso_refreshes
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
    }
    /// A write of `record` to the state directory failed.
    pub fn state_write_failed(&self, record: StateRecord) {
        self.state_writes_failed
            .get_or_create(&labels(&[("record", record.as_str())]))
            .inc();
    }
    /// Credentials rejected.
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// The text exposition, with the gauges set from `gauges`.
    pub fn render(&self, gauges: &Gauges<'_>) -> String {
        for (link, up) in [("rest", gauges.rest_up), ("xmpp", gauges.xmpp_up)] {
            self.link_up
                .get_or_create(&labels(&[("link", link)]))
                .set(i64::from(up));
        }
        for p in Phase::ALL {
            self.phase
                .get_or_create(&labels(&[("phase", p.as_str())]))
                .set(i64::from(*p == gauges.phase));
        }
        self.dialogs.clear();
        for (mrd, state) in &gauges.dialogs {
            let media = mrd.to_string();
            self.dialogs
                .get_or_create(&labels(&[("media", &media), ("state", state)]))
                .inc();
        }
        for (mrd, eligible, persistent, refused) in &gauges.media {
            let media = mrd.to_string();
            let l = labels(&[("media", &media)]);
            self.media_eligible
                .get_or_create(&l)
                .set(i64::from(*eligible));
            self.drift_persistent
                .get_or_create(&l)
                .set(i64::from(*persistent));
            self.signin_refused
                .get_or_create(&l)
                .set(i64::from(*refused));
        }
        for record in StateRecord::ALL {
            let failing = gauges.failing_records.contains(record);
            self.state_write_failing
                .get_or_create(&labels(&[("record", record.as_str())]))
                .set(i64::from(failing));
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
