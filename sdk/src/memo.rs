//! Upstream answers kept for one invocation (one sync page, one `get`), so that records sharing
//! a space, a parent or a group cost one request for all of them. Connector instances are fresh
//! on every call, so nothing kept here outlives the invocation.
//!
//! ```ignore
//! #[derive(Default)]
//! struct Answers { spaces: Memo<Access>, members: Memo<Vec<String>> }
//! let space = answers.spaces.get(space_id, || space_readers(cfg, space_id))?.clone();
//! ```

use std::collections::BTreeMap;

use crate::Result;

/// Values by key, each fetched the first time it is asked for.
#[derive(Clone, Debug)]
pub struct Memo<V>(BTreeMap<String, V>);

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo(BTreeMap::new())
    }
}

impl<V> Memo<V> {
    /// The value under `key`, from `fetch` the first time. A failed fetch keeps nothing, so the
    /// next ask tries again.
    pub fn get(&mut self, key: &str, fetch: impl FnOnce() -> Result<V>) -> Result<&V> {
        if !self.0.contains_key(key) {
            let value = fetch()?;
            self.0.insert(key.to_owned(), value);
        }
        Ok(&self.0[key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_fetched_once_and_a_failure_is_not_kept() {
        let (mut memo, mut asked) = (Memo::default(), Vec::new());
        for key in ["a", "b", "a"] {
            let got = memo.get(key, || {
                asked.push(key);
                Ok(key.len())
            });
            assert_eq!(got.copied().unwrap(), 1);
        }
        assert_eq!(asked, ["a", "b"]);
        let failed = memo.get("c", || Err(crate::Error::upstream("down")));
        assert!(failed.is_err());
        assert_eq!(
            *memo.get("c", || Ok(7)).unwrap(),
            7,
            "fetched again after a failure"
        );
    }
}
