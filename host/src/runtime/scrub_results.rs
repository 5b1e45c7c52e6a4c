//! Secret values removed from what a connector returns, before the host keeps or serves it: a
//! document (search hits, `get`) and a sync page (which the store keeps and then serves). A
//! connector that may `reveal` a secret, or relays an upstream's echo of one, must not get it
//! into either.

use crate::model;
use crate::scrub::Scrubber;

/// Every string of `d` with secret values replaced; true when something was removed.
pub(super) fn scrub_document(scrubber: &Scrubber, d: &mut model::Document) -> bool {
    if scrubber.is_empty() {
        return false;
    }
    let mut changed = false;
    for text in [
        &mut d.id,
        &mut d.kind,
        &mut d.title,
        &mut d.body,
        &mut d.updated_at,
    ] {
        changed |= scrubber.scrub_in_place(text);
    }
    if let Some(url) = &mut d.url {
        changed |= scrubber.scrub_in_place(url);
    }
    for a in &mut d.acl {
        changed |= scrubber.scrub_in_place(a);
    }
    let mut metadata = d.metadata.value().clone();
    if scrubber.scrub_json(&mut metadata) {
        d.metadata = metadata.into();
        changed = true;
    }
    changed
}

/// Removes known secret values from every text of a sync page (documents, deleted ids, the
/// cursor the host stores). True when something was removed.
pub(super) fn scrub_page(scrubber: &Scrubber, page: &mut model::SyncPage) -> bool {
    // Almost every page holds no secret: one scan over all of its text says so.
    if !scrubber.finds_in_any(page_texts(page)) {
        return false;
    }
    let mut changed = false;
    for d in &mut page.upserts {
        changed |= scrub_document(scrubber, d);
    }
    for r in &mut page.deletes {
        changed |= scrubber.scrub_in_place(&mut r.id);
        changed |= scrubber.scrub_in_place(&mut r.kind);
    }
    if let Some(c) = &mut page.next_cursor {
        changed |= scrubber.scrub_in_place(c);
    }
    changed
}

/// Every text of a page that [`scrub_page`] scrubs (metadata strings and keys included).
/// Metadata without a backslash is scanned as its JSON text, which holds each of its strings
/// and keys as they are; an escape could hide a value, so other metadata is scanned parsed.
fn page_texts(page: &model::SyncPage) -> Vec<&str> {
    fn json<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(items) => items.iter().for_each(|i| json(i, out)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push(k);
                json(v, out);
            }),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(page.upserts.len() * 16);
    for d in &page.upserts {
        out.extend([&d.id, &d.kind, &d.title, &d.body, &d.updated_at].map(String::as_str));
        out.extend(d.url.as_deref());
        out.extend(d.acl.iter().map(String::as_str));
        match d.metadata.as_str() {
            text if !text.contains('\\') => out.push(text),
            _ => json(d.metadata.value(), &mut out),
        }
    }
    for r in &page.deletes {
        out.extend([r.id.as_str(), r.kind.as_str()]);
    }
    out.extend(page.next_cursor.as_deref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_pages_lose_secret_values_in_every_field() {
        let scrubber = Scrubber::new();
        scrubber.add("revealed-Secret-99");
        let secret = "revealed-Secret-99";
        let mut page = model::SyncPage {
            upserts: vec![model::Document {
                id: format!("id-{secret}"),
                kind: "page".into(),
                title: format!("title {secret}"),
                body: format!("the token is {secret}."),
                url: Some(format!("https://x/?t={secret}")),
                updated_at: "2026-01-01T00:00:00Z".into(),
                metadata: serde_json::json!({"nested": [secret], secret: "as a key"}).into(),
                acl: vec![secret.to_string()],
            }],
            deletes: vec![model::DocumentRef {
                kind: "page".into(),
                id: secret.into(),
            }],
            next_cursor: Some(secret.into()),
            done: false,
        };
        assert!(scrub_page(&scrubber, &mut page));
        let text = serde_json::to_string(&page).unwrap();
        assert!(!text.contains(secret), "{text}");
        assert!(!scrub_page(&scrubber, &mut page), "nothing left to remove");
    }

    #[test]
    fn a_secret_in_any_single_field_of_a_page_is_found_by_the_one_scan() {
        let secret = "revealed-Secret-99";
        let scrubber = Scrubber::new();
        scrubber.add(secret);
        let clean = || model::SyncPage {
            upserts: vec![model::Document {
                id: "1".into(),
                kind: "page".into(),
                title: "t".into(),
                body: "b".into(),
                url: Some("https://x/1".into()),
                updated_at: "2026-01-01T00:00:00Z".into(),
                metadata: serde_json::json!({"k": ["v", 1], "o": {"p": "q"}}).into(),
                acl: vec!["alice".into()],
            }],
            deletes: vec![model::DocumentRef {
                kind: "page".into(),
                id: "2".into(),
            }],
            next_cursor: Some("c".into()),
            done: false,
        };
        let s = || secret.to_string();
        // Metadata as a connector sends it, with the secret in place of SECRET.
        let meta = |text: &str| model::Metadata::from_connector(text.replace("SECRET", secret));
        type Plant = Box<dyn Fn(&mut model::SyncPage)>;
        let plants: Vec<(&str, Plant)> = vec![
            ("id", Box::new(move |p| p.upserts[0].id = s())),
            ("kind", Box::new(move |p| p.upserts[0].kind = s())),
            ("title", Box::new(move |p| p.upserts[0].title = s())),
            ("body", Box::new(move |p| p.upserts[0].body = s())),
            ("url", Box::new(move |p| p.upserts[0].url = Some(s()))),
            (
                "updated_at",
                Box::new(move |p| p.upserts[0].updated_at = s()),
            ),
            ("acl", Box::new(move |p| p.upserts[0].acl.push(s()))),
            (
                "metadata value",
                Box::new(move |p| p.upserts[0].metadata = meta(r#"{"o":{"p":"SECRET"}}"#)),
            ),
            (
                "metadata array",
                Box::new(move |p| p.upserts[0].metadata = meta(r#"{"k":["SECRET",1]}"#)),
            ),
            (
                "metadata key",
                Box::new(move |p| p.upserts[0].metadata = meta(r#"{"SECRET":1}"#)),
            ),
            (
                "metadata beside an escape",
                Box::new(move |p| p.upserts[0].metadata = meta(r#"{"a":"\n","b":"SECRET"}"#)),
            ),
            (
                "metadata not canonical",
                Box::new(move |p| p.upserts[0].metadata = meta(r#"{"b": "SECRET", "a": 1.0}"#)),
            ),
            ("deleted id", Box::new(move |p| p.deletes[0].id = s())),
            ("deleted kind", Box::new(move |p| p.deletes[0].kind = s())),
            ("cursor", Box::new(move |p| p.next_cursor = Some(s()))),
        ];
        assert!(!scrub_page(&scrubber, &mut clean()));
        for (field, plant) in plants {
            let mut page = clean();
            plant(&mut page);
            assert!(scrub_page(&scrubber, &mut page), "{field}");
            let text = serde_json::to_string(&page).unwrap();
            assert!(!text.contains(secret), "{field}: {text}");
        }
    }

    #[test]
    fn a_secret_that_metadata_text_holds_only_escaped_is_still_found() {
        // A quote in the secret is `\"` in the JSON text: the text alone would not show it.
        let secret = "revealed\"Secret-99";
        let scrubber = Scrubber::new();
        scrubber.add(secret);
        let metadata = model::Metadata::from(serde_json::json!({ "k": secret }));
        assert!(metadata.as_str().contains(r#"revealed\"Secret"#));
        let mut page = model::SyncPage {
            upserts: vec![model::Document {
                id: "1".into(),
                kind: "page".into(),
                title: "t".into(),
                body: "b".into(),
                url: None,
                updated_at: String::new(),
                metadata,
                acl: vec![],
            }],
            deletes: vec![],
            next_cursor: None,
            done: true,
        };
        assert!(scrub_page(&scrubber, &mut page));
        assert!(
            !page.upserts[0].metadata.value()["k"]
                .as_str()
                .unwrap()
                .contains(secret)
        );
    }
}
