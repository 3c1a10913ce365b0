//! Cluster mode for a fleet (`[cluster]` in the fleet file): several hosts share one agents
//! directory and each runs only the agents that it owns, ownership decided on etcd so that a
//! host that dies is replaced within Finesse's 60 s forced-logout window and no agent ever has
//! two owners. The decisions are free of I/O: the settings ([`config`]), who should own an
//! agent ([`hrw`]), what one host should claim, hand over or release ([`plan`]), and when a
//! host must stop acting on its own ([`fence`]); [`store`] reads and writes the records on
//! etcd, [`lease`] keeps this host's lease and publishes its deadline, [`gate`] holds every
//! request of an agent past it, and [`turn`] is one round of reading, planning, claiming and
//! releasing that the fleet runs every second; [`pace`] is how many agents a host says it is
//! ready to be handed; [`status`] is what the API and metrics show.

pub mod config;
pub mod fence;
pub mod gate;
pub mod hrw;
pub mod lease;
pub mod pace;
pub mod plan;
pub mod status;
pub mod store;
pub mod turn;
