//! Cluster mode for a fleet (`[cluster]` in the fleet file): several hosts share one agents
//! directory and each runs only the agents that it owns, ownership decided on etcd so that a
//! host that dies is replaced within Finesse's 60 s forced-logout window and no agent ever has
//! two owners. The decisions are free of I/O: the settings ([`config`]), who should own an
//! agent ([`hrw`]), what one host should claim, hand over or release ([`plan`]), and when a
//! host must stop acting on its own ([`fence`]); [`store`] reads and writes the records on
//! etcd. Not yet wired to `finesse-taskd fleet`: a fleet file's `[cluster]` is still refused.

pub mod config;
pub mod fence;
pub mod hrw;
pub mod plan;
pub mod store;
