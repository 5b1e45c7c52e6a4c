//! Running connector components: the engine, the contract (one file per version, `contract/`),
//! per-invocation state and the loaded connector with its invocation path.

pub mod connector;
pub mod context;
pub mod contract;
pub mod engine;
pub mod fetched_page;
pub mod input;
pub mod linked;
mod scrub_results;
pub mod shared;
pub mod state;

// The model moved below the store (`crate::model`); the old path still names it.
pub use crate::model;
