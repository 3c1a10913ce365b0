//! Cluster mode for a fleet (`[cluster]` in the fleet file): several hosts share one agents
//! directory and each runs only the agents that it owns, ownership decided on etcd so that a
//! host that dies is replaced within Finesse's 60 s forced-logout window and no agent ever has
//! two owners. This module holds the decisions, free of I/O: the settings ([`config`]), who
//! should own an agent ([`hrw`]), and when a host must stop acting on its own ([`fence`]).

pub mod config;
pub mod fence;
pub mod hrw;
pub mod store;
