//! Who an outbound call is made for, as the gate sees it: the name of a call that arrived
//! without a context (`runtime::context` gives it), which is nobody's, so per-person tokens and
//! identities are never looked up for it.

/// The principal of a call that arrived without a context.
pub const UNKNOWN_PRINCIPAL: &str = "unknown";

/// `principal` when it names somebody (not absent, not [`UNKNOWN_PRINCIPAL`]).
pub fn somebody(principal: Option<&str>) -> Option<&str> {
    principal.filter(|p| *p != UNKNOWN_PRINCIPAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_principal_is_nobody() {
        assert_eq!(somebody(Some(UNKNOWN_PRINCIPAL)), None);
        assert_eq!(somebody(None), None);
        assert_eq!(somebody(Some("token:alice")), Some("token:alice"));
    }
}
