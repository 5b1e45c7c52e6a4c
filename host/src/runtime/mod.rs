//! Running connector components: the engine, the bindings, per-invocation state and the loaded
//! connector with its invocation path.

pub mod bindings;
pub mod connector;
pub mod context;
pub mod engine;
pub mod model;
pub mod progress;
pub mod state;
