//! JSON shapes as Confluence sends them: a v2 page (with its body in the requested format) and
//! its `_links` (web UI, edit UI and tiny links).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::Confluence;
use super::data::{Data, Page, status};
use crate::common::rfc3339_ms;

impl Confluence {
    pub(super) fn page_links(&self, d: &Data, p: &Page) -> Value {
        let slug: String = p
            .title
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '+' })
            .collect();
        let le = p.id.to_le_bytes();
        let tiny =
            URL_SAFE_NO_PAD.encode(&le[..le.iter().rposition(|b| *b != 0).map_or(1, |i| i + 1)]);
        json!({
            "webui": format!("/spaces/{}/pages/{}/{slug}", d.spaces[p.space].key, p.id),
            "editui": format!("/pages/resumedraft.action?draftId={}", p.id),
            "tinyui": format!("/x/{tiny}"),
        })
    }

    pub(super) fn page_json(&self, d: &Data, p: &Page, body: Option<&str>) -> Value {
        let mut v = json!({
            "id": p.id.to_string(),
            "status": status(p),
            "title": p.title,
            "spaceId": d.spaces[p.space].id.to_string(),
            "parentId": p.parent_id.map(|id| id.to_string()),
            "parentType": p.parent_id.map(|_| "page"),
            "position": null,
            "authorId": p.author,
            "ownerId": p.author,
            "lastOwnerId": null,
            "createdAt": rfc3339_ms(p.created_ms),
            "version": {"createdAt": rfc3339_ms(p.version_ms), "message": "", "number": p.version, "minorEdit": false, "authorId": p.version_author},
            "_links": self.page_links(d, p),
        });
        match body {
            Some("storage") => {
                v["body"] = json!({"storage": {"representation": "storage", "value": p.body}})
            }
            Some(_) => {
                let doc = json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": p.text}]}]});
                v["body"] = json!({"atlas_doc_format": {"representation": "atlas_doc_format", "value": doc.to_string()}});
            }
            None => {}
        }
        v
    }
}
