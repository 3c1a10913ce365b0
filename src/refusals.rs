//! The credentials the site refused within its lockout window, kept across reloads and
//! restarts: each refusal's time, the end of the hold it began, and a salted fingerprint of
//! the credentials (never the credentials). The login gate asks it two things: is this
//! credential one already refused (a file flipping between refused passwords must not send
//! each again at once), and may a changed credential end a hold early without the next
//! refusal reaching `lockout_attempts` within `lockout_window`. Pure: the driver reads and
//! writes the file; an unreadable file means "hold" (fail closed).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// When the site refused the credentials.
    pub at: SystemTime,
    /// When the hold it began ends.
    pub until: SystemTime,
    /// The fingerprint's salt.
    pub salt: String,
    /// The salted fingerprint of the refused credentials.
    pub digest: String,
}

/// The refusals still inside the lockout window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<Refusal>,
}

/// A ledger file that cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the refusal record is damaged: {0}")]
pub struct Damaged(pub String);

fn ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn time(text: &str) -> Result<SystemTime, Damaged> {
    let ms: u64 = text
        .parse()
        .map_err(|_| Damaged(format!("{text:?} is no time")))?;
    Ok(UNIX_EPOCH + Duration::from_millis(ms))
}

impl Ledger {
    /// Reads the file's text: one refusal a line, `at until salt digest`.
    pub fn parse(text: &str) -> Result<Self, Damaged> {
        let mut entries = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [at, until, salt, digest] = f[..] else {
                return Err(Damaged(format!("a line has {} fields, not 4", f.len())));
            };
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Damaged("a fingerprint is not SHA-256 hex".into()));
            }
            entries.push(Refusal {
                at: time(at)?,
                until: time(until)?,
                salt: salt.to_owned(),
                digest: digest.to_owned(),
            });
        }
        Ok(Self { entries })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        self.entries
            .iter()
            .map(|r| format!("{} {} {} {}\n", ms(r.at), ms(r.until), r.salt, r.digest))
            .collect()
    }

    /// Forgets the refusals older than `window` at `now` (their holds are over by then).
    pub fn prune(&mut self, now: SystemTime, window: Duration) {
        self.entries
            .retain(|r| now.duration_since(r.at).map_or(true, |age| age < window) || r.until > now);
    }

    /// Adds a refusal.
    pub fn record(&mut self, refusal: Refusal) {
        self.entries.push(refusal);
    }

    /// The refusals kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The refusal of the credentials whose fingerprint with a salt is `fingerprint(salt)`.
    pub fn find(&self, fingerprint: impl Fn(&str) -> String) -> Option<&Refusal> {
        self.entries
            .iter()
            .rev()
            .find(|r| fingerprint(&r.salt) == r.digest)
    }

    /// The end of the latest hold still running at `now`.
    pub fn hold_end(&self, now: SystemTime) -> Option<SystemTime> {
        self.entries
            .iter()
            .map(|r| r.until)
            .filter(|u| *u > now)
            .max()
    }

    /// May a change to these credentials (`fingerprint`) end a running hold early? Only when
    /// they were not refused already, and one more refusal would still leave the count
    /// under `attempts`.
    pub fn may_end_hold(&self, fingerprint: impl Fn(&str) -> String, attempts: u32) -> bool {
        self.find(fingerprint).is_none() && self.len() + 1 < attempts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(secret: &'static str) -> impl Fn(&str) -> String {
        move |salt: &str| {
            let digest = crate::tls::sha256(format!("{salt}\0{secret}").as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        }
    }

    fn refusal(secret: &'static str, at: SystemTime, hold: u64) -> Refusal {
        let salt = format!("{:x}", ms(at));
        Refusal {
            at,
            until: at + Duration::from_secs(hold),
            digest: fp(secret)(&salt),
            salt,
        }
    }

    #[test]
    fn a_credential_refused_in_the_window_is_known_and_a_flip_back_does_not_end_the_hold() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut l = Ledger::default();
        l.record(refusal("a", t0, 60));
        l.record(refusal("b", t0 + Duration::from_secs(1), 60));
        assert!(l.find(fp("a")).is_some() && l.find(fp("b")).is_some());
        assert!(!l.may_end_hold(fp("a"), 5), "a refused password again");
        assert!(!l.may_end_hold(fp("b"), 5));
        assert!(
            l.may_end_hold(fp("c"), 5),
            "a new one, with room under the lockout"
        );
        // Two refused, a third would leave one attempt before a lockout of 4: wait instead.
        assert!(!l.may_end_hold(fp("c"), 3));
        assert_eq!(l.hold_end(t0), Some(t0 + Duration::from_secs(61)));
    }

    #[test]
    fn it_survives_a_restart_and_forgets_refusals_past_the_window() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut l = Ledger::default();
        l.record(refusal("a", t0, 60));
        l.record(refusal("b", t0 + Duration::from_secs(100), 60));
        let again = Ledger::parse(&l.render()).unwrap();
        assert_eq!(again, l);
        let mut later = again.clone();
        later.prune(t0 + Duration::from_secs(350), Duration::from_secs(300));
        assert!(later.find(fp("a")).is_none(), "past the window");
        assert!(later.find(fp("b")).is_some());
        assert_eq!(later.len(), 1);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_empty_ledger() {
        for text in ["x y z", "1 2 salt nothex", "1 two salt 00", "1 2 s"] {
            assert!(Ledger::parse(text).is_err(), "{text}");
        }
        assert_eq!(Ledger::parse("\n").unwrap(), Ledger::default());
    }
}
