//! Single sign-on: Cisco's token pair ([`token`]), the copy kept in the state directory
//! ([`store`]), and the cell that holds the current access token for the REST client and the
//! XMPP login ([`TokenCell`]), replaced after each refresh so that every later request and
//! every reconnect uses the newest token.

pub mod store;
pub mod token;

use std::sync::{Arc, RwLock};

use crate::secret::Secret;

/// The current access token, shared by everything that sends it.
#[derive(Clone, Debug)]
pub struct TokenCell(Arc<RwLock<Secret>>);

impl TokenCell {
    /// A cell holding `token`.
    pub fn new(token: Secret) -> Self {
        Self(Arc::new(RwLock::new(token)))
    }

    /// The token to send now.
    pub fn current(&self) -> Secret {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the token (after a refresh or a reload).
    pub fn set(&self, token: Secret) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }
}
