//! A cap that some requests wait for: a fleet's herd caps on logins and on REST requests
//! ([`crate::fleet`] implements it with token buckets). Defined down here so that the REST
//! client and the driver can wait for it without knowing about fleets; a single agent has
//! none.

use std::future::Future;
use std::pin::Pin;

/// A future that waits for a slot.
pub type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A login slot, held while the login runs: dropping it lets the next one start.
pub type Slot = Box<dyn Send>;

/// A future that waits for a login slot.
pub type Held<'a> = Pin<Box<dyn Future<Output = Slot> + Send + 'a>>;

/// Slots for the two kinds of work a Finesse node feels when many agents come back at once.
pub trait Throttle: Send + Sync {
    /// Waits for a login slot (an XMPP login or a Media sign-in), held until the login has
    /// its answer (a cap on the logins in flight as well as on their rate).
    fn login(&self) -> Held<'_>;
    /// Waits for a REST request slot.
    fn request(&self) -> Wait<'_>;
}
