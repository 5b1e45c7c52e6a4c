//! Running connector components: the engine, the bindings, per-invocation state and the loaded
//! connector with its invocation path.

pub mod bindings;
pub mod connector;
pub mod context;
pub mod engine;
pub mod input;
pub mod progress;
pub mod shared;
pub mod state;

// The model moved below the store (`crate::model`); the old path still names it.
pub use crate::model;
