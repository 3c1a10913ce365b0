//! Finesse's REST side: the typed XML model ([`model`]) shared with the XMPP decoder, and the
//! REST client ([`rest`]) with capped bodies, Basic auth and errors classified by cause.

pub mod model;
mod pull;
mod read;
pub mod rest;
mod system_info;
