//! Test fixture: a connector built against `airlock:connector@2.0.0` (a copy of the real contract
//! with only the package version changed). The host, which speaks 0.1.x, must refuse it as an
//! incompatible major version.

wit_bindgen::generate!({ path: "wit", world: "connector-world", generate_all });

use airlock::connector::types::{
    ConnectorInfo, Document, Error, HealthStatus, SearchRequest, SearchResult, SyncPage,
};

struct FutureContract;

impl exports::airlock::connector::connector::Guest for FutureContract {
    fn info() -> ConnectorInfo {
        ConnectorInfo {
            name: "future-contract".into(),
            version: "2.0.0".into(),
            description: "Built against airlock:connector@2.0.0.".into(),
            streams: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn health() -> Result<HealthStatus, Error> {
        Ok(HealthStatus {
            ok: true,
            message: "ok".into(),
        })
    }

    fn search(_request: SearchRequest) -> Result<SearchResult, Error> {
        Ok(SearchResult {
            hits: Vec::new(),
            next_cursor: None,
        })
    }

    fn get(id: String) -> Result<Document, Error> {
        Err(Error::NotFound(id))
    }

    fn check_permission(_principal: String, _id: String) -> Result<bool, Error> {
        Ok(false)
    }

    fn sync(_stream: String, _cursor: Option<String>) -> Result<SyncPage, Error> {
        Ok(SyncPage {
            upserts: Vec::new(),
            deletes: Vec::new(),
            next_cursor: None,
            done: true,
        })
    }

    fn invoke(action: String, _input: String) -> Result<String, Error> {
        Err(Error::NotFound(action))
    }
}

export!(FutureContract);
