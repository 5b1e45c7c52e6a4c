//! Local fakes of the SaaS APIs Airlock connectors talk to. Each fake is faithful where a connector
//! can tell the difference (URL shapes, auth, envelopes, cursors, errors, rate limits), serves a
//! deterministic data set built from a seed, and exposes its ground truth and mutation knobs both as
//! Rust methods on [`RunningFake`] and as unauthenticated control routes under `/_fake/`.

pub mod common;
pub mod confluence;
pub mod server;
#[cfg(test)]
mod testutil;
pub mod zendesk;

pub use confluence::{
    ConfluenceOptions, ConfluenceTruth, Mutation, MutationReport, TruthPage, TruthSpace,
    spawn_confluence,
};
pub use server::{RequestCounts, RunningFake, ServingFake};
pub use zendesk::{
    TruthArticle, TruthComment, TruthTicket, Zendesk, ZendeskMutation, ZendeskMutationReport,
    ZendeskOptions, ZendeskTruth, spawn_zendesk,
};
