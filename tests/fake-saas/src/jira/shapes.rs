//! JSON shapes as Jira and JSM send them (times, users, ADF bodies, issues, requests, comments,
//! articles), their error bodies, and the ground truth built from them.

use std::sync::MutexGuard;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::data::{Comment, Data, Issue};
use super::{
    Jira, JiraTruth, JiraTruthArticle, JiraTruthComment, JiraTruthRequest, STATUSES, USERS,
};
use crate::common::{json_reply, rfc3339_ms};

/// Jira's timestamp style: `2026-01-02T03:04:05.000+0000`.
pub fn jira_time(ms: i64) -> String {
    rfc3339_ms(ms).replace('Z', "+0000")
}

pub(super) fn date_json(ms: i64) -> Value {
    let t = jira_time(ms);
    json!({"iso8601": t.replace(".000", ""), "jira": t, "friendly": t[..10], "epochMillis": ms})
}

pub(super) fn user_json(i: usize) -> Value {
    let (id, name) = USERS[i];
    let email = format!(
        "{}@example.com",
        name.split(' ').next().unwrap_or("").to_lowercase()
    );
    json!({"accountId": id, "emailAddress": email, "displayName": name, "active": true,
           "timeZone": "UTC"})
}

/// Atlassian Document Format: one paragraph per text paragraph; the first word is bold.
pub(super) fn adf(paragraphs: &[String]) -> Value {
    let content: Vec<Value> = paragraphs
        .iter()
        .map(|p| {
            let (first, rest) = p.split_once(' ').unwrap_or((p, ""));
            let mut nodes =
                vec![json!({"type": "text", "text": first, "marks": [{"type": "strong"}]})];
            if !rest.is_empty() {
                nodes.push(json!({"type": "text", "text": format!(" {rest}")}));
            }
            json!({"type": "paragraph", "content": nodes})
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": content})
}

pub(super) fn jira_errors(status: StatusCode, message: &str) -> Response {
    json_reply(status, json!({"errorMessages": [message], "errors": {}}))
}

pub(super) fn jsm_error(status: StatusCode, message: &str) -> Response {
    json_reply(
        status,
        json!({"errorMessage": message,
               "i18nErrorMessage": {"i18nKey": "sd.fake.error", "parameters": []}}),
    )
}

pub(super) fn no_request() -> Response {
    jsm_error(
        StatusCode::NOT_FOUND,
        "The request either does not exist or you do not have permission to view it.",
    )
}

impl Jira {
    pub(super) fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn issue_json(&self, i: &Issue, fields: &[String]) -> Value {
        let all = fields.iter().any(|f| f == "*all" || f == "*navigable");
        let want = |f: &str| all || fields.iter().any(|x| x == f);
        let mut out = serde_json::Map::new();
        let (status, category) = STATUSES[i.status];
        let mut put = |name: &str, v: Value| {
            if want(name) {
                out.insert(name.into(), v);
            }
        };
        put("summary", json!(i.summary));
        put("description", adf(&i.paragraphs));
        put(
            "status",
            json!({"name": status, "statusCategory": {"key": category}}),
        );
        put("updated", json!(jira_time(i.updated_ms)));
        put("created", json!(jira_time(i.created_ms)));
        put("reporter", user_json(i.reporter));
        put(
            "issuetype",
            json!({"id": "10100", "name": "Service Request"}),
        );
        put("project", json!({"key": i.key.split('-').next()}));
        let people: Vec<Value> = i.participants.iter().map(|p| user_json(*p)).collect();
        put(super::PARTICIPANTS_FIELD, json!(people));
        let orgs = i.organizations.iter().filter_map(|o| {
            let (id, name) = super::ORGANIZATIONS.iter().find(|(x, _)| x == o)?;
            Some(json!({"id": id.to_string(), "name": name,
                "_links": {"self": format!("{}/rest/servicedeskapi/organization/{id}", self.base_url)}}))
        });
        put(super::ORGANIZATIONS_FIELD, json!(orgs.collect::<Vec<_>>()));
        json!({"id": i.id.to_string(), "key": i.key,
               "self": format!("{}/rest/api/3/issue/{}", self.base_url, i.id), "fields": out})
    }

    pub(super) fn request_json(&self, i: &Issue) -> Value {
        let (status, category) = STATUSES[i.status];
        json!({
            "issueId": i.id.to_string(), "issueKey": i.key, "requestTypeId": "11",
            "serviceDeskId": "1", "createdDate": date_json(i.created_ms),
            "reporter": user_json(i.reporter),
            "requestFieldValues": [
                {"fieldId": "summary", "label": "Summary", "value": i.summary},
                {"fieldId": "description", "label": "Description", "value": i.description()}
            ],
            "currentStatus": {"status": status, "statusCategory": category.to_uppercase(),
                              "statusDate": date_json(i.updated_ms)},
            "_links": {"jiraRest": format!("{}/rest/api/2/issue/{}", self.base_url, i.id),
                       "web": format!("{}/servicedesk/customer/portal/1/{}", self.base_url, i.key),
                       "self": format!("{}/rest/servicedeskapi/request/{}", self.base_url, i.id)}
        })
    }

    pub(super) fn comment_json(&self, i: &Issue, c: &Comment) -> Value {
        json!({"id": c.id.to_string(), "body": c.body, "public": c.public,
               "author": user_json(c.author), "created": date_json(c.created_ms),
               "_links": {"self": format!("{}/rest/servicedeskapi/request/{}/comment/{}",
                                          self.base_url, i.id, c.id)}})
    }

    pub(super) fn truth(&self) -> JiraTruth {
        let d = self.data();
        let requests = d
            .issues
            .iter()
            .map(|i| JiraTruthRequest {
                id: i.id,
                key: i.key.clone(),
                summary: i.summary.clone(),
                description: i.description(),
                status: STATUSES[i.status].0.into(),
                reporter_account_id: USERS[i.reporter].0.into(),
                participant_account_ids: i
                    .participants
                    .iter()
                    .map(|p| USERS[*p].0.into())
                    .collect(),
                organization_ids: i.organizations.clone(),
                created: jira_time(i.created_ms),
                updated: jira_time(i.updated_ms),
                comments: i
                    .comments
                    .iter()
                    .map(|c| JiraTruthComment {
                        id: c.id,
                        body: c.body.clone(),
                        public: c.public,
                        author_account_id: USERS[c.author].0.into(),
                        created: jira_time(c.created_ms),
                    })
                    .collect(),
            })
            .collect();
        let articles = d
            .articles
            .iter()
            .map(|a| JiraTruthArticle {
                page_id: a.page_id,
                space_key: "KB".into(),
                title: a.title.clone(),
                excerpt: a.excerpt.clone(),
            })
            .collect();
        JiraTruth { requests, articles }
    }
}
