//! Who an invocation runs for, carried as a tokio task-local from the API or CLI down to the
//! gate: whether its writes were approved, the id its audit rows share (an approval's id), and
//! the principal who asked (named in every audit row of the invocation). A call that reaches a
//! connector without a context fails closed: no writes, principal `unknown`. Callers that are
//! the operator's own code say so with [`CallContext::trusted`].

use std::future::Future;

#[derive(Clone, Debug)]
pub struct CallContext {
    /// Write actions may send write requests (approved, or run by the operator's own code).
    pub approved_writes: bool,
    /// The invocation id to use instead of a fresh one (links audit rows to an approval).
    pub invocation: Option<String>,
    /// Who asked: `token:NAME` (API or MCP), `cli:USER`, `daemon:scheduler`; None for in-process
    /// callers that did not say.
    pub principal: Option<String>,
}

/// The principal of a call that arrived without a context (the gate treats it as nobody).
pub use crate::capabilities::principal::UNKNOWN_PRINCIPAL;

impl CallContext {
    /// The operator's own code (scheduler, CLI, admin-triggered syncs): writes allowed.
    pub fn trusted() -> CallContext {
        CallContext {
            approved_writes: true,
            invocation: None,
            principal: None,
        }
    }

    /// What a call without a context gets: no writes, principal `unknown`.
    pub fn unknown() -> CallContext {
        CallContext {
            approved_writes: false,
            invocation: None,
            principal: Some(UNKNOWN_PRINCIPAL.to_string()),
        }
    }

    /// A request from the API or CLI: writes only through an approval.
    pub fn requested() -> CallContext {
        CallContext {
            approved_writes: false,
            invocation: None,
            principal: None,
        }
    }

    /// The run of an approved write action; its audit rows carry the approval's id.
    pub fn approved(approval: &str) -> CallContext {
        CallContext {
            approved_writes: true,
            invocation: Some(approval.to_string()),
            principal: None,
        }
    }

    /// The same context, asked for by `principal`.
    pub fn by(mut self, principal: &str) -> CallContext {
        self.principal = Some(principal.to_string());
        self
    }
}

tokio::task_local! {
    static CALL: CallContext;
}

/// The context of the current task; without one, [`CallContext::unknown`] (fail closed).
pub fn current() -> CallContext {
    CALL.try_with(Clone::clone)
        .unwrap_or_else(|_| CallContext::unknown())
}

/// The principal of the current task's context, if any (cheaper than cloning the context).
pub fn current_principal() -> Option<String> {
    CALL.try_with(|c| c.principal.clone()).ok().flatten()
}

/// Runs `f` with `ctx` as the current context.
pub async fn with<F: Future>(ctx: CallContext, f: F) -> F::Output {
    CALL.scope(ctx, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_context_means_no_writes_and_an_unknown_principal() {
        let c = current();
        assert!(!c.approved_writes);
        assert_eq!(c.principal.as_deref(), Some(UNKNOWN_PRINCIPAL));
        let inside = with(CallContext::trusted().by("cli:op"), async { current() }).await;
        assert!(inside.approved_writes);
        assert_eq!(inside.principal.as_deref(), Some("cli:op"));
    }
}
