//! The shared vocabulary every layer speaks: the qualifications' table ([`qualification`]), rows
//! ([`model`]), the rules that span rows ([`exclusive`]), the run's counters ([`stats`]), exit codes and error helpers
//! ([`error`]), and the one way a file is replaced ([`atomic`]). Imports nothing of the crate.

pub(crate) mod atomic;
pub mod error;
pub(crate) mod exclusive;
pub mod model;
pub mod qualification;
pub(crate) mod stats;
pub(crate) mod stop;
