//! Finesse's REST side: the typed XML model ([`model`]) shared with the XMPP decoder, and the
//! REST client ([`rest`]) with capped bodies, Basic auth and errors classified by cause, and
//! SSO's token refresh and loginName lookup ([`sso`]), and what a fleet's agents share
//! ([`share`]).

pub mod model;
mod pull;
mod read;
pub mod rest;
pub mod share;
pub mod sso;
mod system_info;
