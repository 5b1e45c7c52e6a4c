//! Local fakes of the SaaS APIs Airlock connectors talk to. Each fake is faithful where a connector
//! can tell the difference (URL shapes, auth, envelopes, cursors, errors, rate limits), serves a
//! deterministic data set built from a seed, and exposes its ground truth and mutation knobs both as
//! Rust methods on [`RunningFake`] and as unauthenticated control routes under `/_fake/`, one
//! shared layer ([`control`]) that every fake mounts.

pub mod aad;
pub mod atera;
pub mod azure;
pub mod cli;
pub mod common;
pub mod confluence;
pub mod control;
pub mod embeddings;
pub mod faults;
pub mod grounded;
pub mod jira;
pub mod msgraph;
pub mod notify;
pub mod oidc;
pub mod openai;
pub mod server;
#[cfg(test)]
mod testutil;
pub mod zendesk;

pub use atera::{
    Atera, AteraMutation, AteraMutationReport, AteraOptions, AteraTruth, AteraTruthComment,
    AteraTruthTicket, AteraWrite, spawn_atera,
};
pub use azure::{Azure, AzureOptions, AzureTruth, AzureTruthVm, spawn_azure};
pub use confluence::{
    ACCOUNT_IDS, ConfluenceOptions, ConfluenceTruth, Group, Mutation, MutationReport, ReadAccess,
    Restrict, SpaceRead, TruthPage, TruthSpace, USER_EMAILS, spawn_confluence,
};
pub use faults::{FaultKind, FaultPlan, FaultReport};
pub use jira::{JiraMutation, JiraMutationReport, JiraOptions, JiraTruth, spawn_jira};
pub use msgraph::{
    Change, ChangeReport, MsGraph, MsGraphMutation, MsGraphMutationReport, MsGraphOptions,
    MsGraphTruth, Subscription, spawn_msgraph,
};
pub use notify::Delivery;
pub use oidc::{Oidc, spawn_oidc};
pub use openai::{OpenAi, OpenAiMode, OpenAiOptions, OpenAiTruth, spawn_openai};
pub use server::{RequestCounts, RunningFake, ServingFake};
pub use zendesk::{
    TruthArticle, TruthComment, TruthTicket, Zendesk, ZendeskMutation, ZendeskMutationReport,
    ZendeskOptions, ZendeskTruth, spawn_zendesk,
};
