//! Finesse's REST side: the typed XML model ([`model`]) shared with the XMPP decoder, the
//! REST client ([`rest`]) with capped bodies, Basic or Bearer auth and errors classified by
//! cause, SSO's token refresh and loginName lookup ([`identity`]), and the SystemInfo answers
//! a fleet's agents share ([`answer_cache`]).

pub mod answer_cache;
pub mod identity;
pub mod model;
mod pull;
mod read;
pub mod rest;
mod system_info;
