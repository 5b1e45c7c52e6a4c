//! JSON shapes as Zendesk sends them: tickets (with `via`), comments (with their HTML body),
//! articles with their URLs, export pages, and the ground truth built from them.

use serde::Serialize;
use serde_json::{Value, json};

use super::data::{Article, CHANNELS, Comment, PRIORITIES, TYPES, Ticket};
use super::{TruthArticle, TruthComment, TruthTicket, US, Zendesk, ZendeskTruth};
use crate::common::{html_escape, rfc3339_secs};

pub(super) fn secs(us: i64) -> i64 {
    us.div_euclid(US)
}

pub(super) fn time(us: i64) -> String {
    rfc3339_secs(secs(us))
}

#[derive(Serialize)]
pub(super) struct Empty {}

#[derive(Serialize)]
pub(super) struct ViaSource {
    pub(super) from: Empty,
    pub(super) to: Empty,
    pub(super) rel: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct Via {
    pub(super) channel: &'static str,
    pub(super) source: ViaSource,
}

pub(super) fn via(channel: &'static str) -> Via {
    Via {
        channel,
        source: ViaSource {
            from: Empty {},
            to: Empty {},
            rel: None,
        },
    }
}

/// A ticket as the API returns it; borrows from the data set so export pages do not clone text.
#[derive(Serialize)]
pub(super) struct TicketOut<'a> {
    pub(super) url: String,
    pub(super) id: u64,
    pub(super) external_id: Option<&'a str>,
    pub(super) via: Via,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) generated_timestamp: i64,
    #[serde(rename = "type")]
    pub(super) kind: Option<&'static str>,
    pub(super) subject: &'a str,
    pub(super) raw_subject: &'a str,
    pub(super) description: &'a str,
    pub(super) priority: Option<&'static str>,
    pub(super) status: &'static str,
    pub(super) recipient: Option<&'a str>,
    pub(super) requester_id: u64,
    pub(super) submitter_id: u64,
    pub(super) assignee_id: Option<u64>,
    pub(super) organization_id: Option<u64>,
    pub(super) group_id: Option<u64>,
    pub(super) collaborator_ids: &'a [u64],
    pub(super) follower_ids: [u64; 0],
    pub(super) email_cc_ids: &'a [u64],
    pub(super) forum_topic_id: Option<u64>,
    pub(super) problem_id: Option<u64>,
    pub(super) has_incidents: bool,
    pub(super) is_public: bool,
    pub(super) due_at: Option<&'a str>,
    pub(super) tags: &'a [&'static str],
    pub(super) custom_fields: [u64; 0],
    pub(super) satisfaction_rating: Option<&'a str>,
    pub(super) sharing_agreement_ids: [u64; 0],
    pub(super) allow_channelback: bool,
    pub(super) allow_attachments: bool,
    pub(super) from_messaging_channel: bool,
}

#[derive(Serialize)]
pub(super) struct ExportPage<'a> {
    pub(super) tickets: Vec<TicketOut<'a>>,
    pub(super) after_url: String,
    pub(super) after_cursor: String,
    pub(super) before_url: String,
    pub(super) before_cursor: String,
    pub(super) end_of_stream: bool,
    /// Sideloaded with `include=organizations`: the organizations of the page's tickets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) organizations: Option<Vec<Value>>,
}

/// Zendesk's `html_body`: one `<p>` per paragraph, line breaks as `<br>`.
pub(super) fn html_body(body: &str) -> String {
    let paragraphs: Vec<String> = body
        .split("\n\n")
        .map(|p| {
            format!(
                "<p dir=\"auto\">{}</p>",
                html_escape(p).replace('\n', "<br>")
            )
        })
        .collect();
    format!(
        "<div class=\"zd-comment\" dir=\"auto\">{}</div>",
        paragraphs.concat()
    )
}

pub(super) fn comment_json(c: &Comment, channel: &'static str) -> Value {
    json!({
        "id": c.id,
        "type": "Comment",
        "author_id": c.author_id,
        "body": c.body,
        "html_body": html_body(&c.body),
        "plain_body": c.body,
        "public": c.public,
        "attachments": [],
        "audit_id": c.id - 1,
        "via": via(channel),
        "created_at": time(c.created_us),
        "metadata": {"system": {}, "custom": {}},
    })
}

pub(super) fn slug(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for w in title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(w);
    }
    out
}

impl Zendesk {
    pub(super) fn ticket_out<'a>(&self, t: &'a Ticket) -> TicketOut<'a> {
        TicketOut {
            url: self.api(&format!("/tickets/{}.json", t.id)),
            id: t.id,
            external_id: None,
            via: via(CHANNELS[usize::from(t.channel)]),
            created_at: time(t.created_us),
            updated_at: time(t.updated_us),
            generated_timestamp: secs(t.updated_us),
            kind: t.kind.map(|k| TYPES[usize::from(k)]),
            subject: &t.subject,
            raw_subject: &t.subject,
            description: t.description(),
            priority: t.priority.map(|p| PRIORITIES[usize::from(p)]),
            status: t.status(),
            recipient: None,
            requester_id: t.requester_id,
            submitter_id: t.requester_id,
            assignee_id: t.assignee_id,
            organization_id: t.organization_id,
            group_id: t.group_id,
            collaborator_ids: &t.ccs,
            follower_ids: [],
            email_cc_ids: &t.ccs,
            forum_topic_id: None,
            problem_id: None,
            has_incidents: false,
            is_public: t.comments.iter().any(|c| c.public),
            due_at: None,
            tags: &t.tags,
            custom_fields: [],
            satisfaction_rating: None,
            sharing_agreement_ids: [],
            allow_channelback: false,
            allow_attachments: true,
            from_messaging_channel: false,
        }
    }

    pub(super) fn article_url(&self, a: &Article) -> String {
        self.api(&format!("/help_center/en-us/articles/{}.json", a.id))
    }

    pub(super) fn article_html_url(&self, a: &Article) -> String {
        let base = a.title.split(" (rev ").next().unwrap_or_default();
        format!(
            "{}/hc/en-us/articles/{}-{}",
            self.base_url,
            a.id,
            slug(base)
        )
    }

    pub(super) fn article_json(&self, a: &Article) -> Value {
        json!({
            "id": a.id,
            "url": self.article_url(a),
            "html_url": self.article_html_url(a),
            "author_id": a.author_id,
            "comments_disabled": false,
            "draft": false,
            "promoted": false,
            "position": 0,
            "vote_sum": 0,
            "vote_count": 0,
            "section_id": a.section_id,
            "created_at": time(a.created_us),
            "updated_at": time(a.updated_us),
            "edited_at": time(a.updated_us),
            "name": a.title,
            "title": a.title,
            "source_locale": "en-us",
            "locale": "en-us",
            "outdated": false,
            "outdated_locales": [],
            "permission_group_id": 1_001,
            "user_segment_id": a.segment,
            "label_names": a.labels,
            "content_tag_ids": [],
            "body": a.body,
        })
    }

    pub(super) fn truth(&self) -> ZendeskTruth {
        let d = self.data();
        let tickets = d
            .tickets
            .iter()
            .filter(|t| !t.deleted())
            .map(|t| TruthTicket {
                id: t.id,
                subject: t.subject.clone(),
                description: t.description().to_owned(),
                status: t.status().into(),
                priority: t.priority.map(|p| PRIORITIES[usize::from(p)].into()),
                ticket_type: t.kind.map(|k| TYPES[usize::from(k)].into()),
                requester_id: t.requester_id,
                assignee_id: t.assignee_id,
                organization_id: t.organization_id,
                organization_shared: t
                    .organization_id
                    .is_some_and(|o| d.shared_orgs.contains(&o)),
                group_id: t.group_id,
                email_cc_ids: t.ccs.clone(),
                tags: t.tags.iter().map(|s| (*s).to_owned()).collect(),
                created_at: time(t.created_us),
                updated_at: time(t.updated_us),
                comments: t
                    .comments
                    .iter()
                    .map(|c| TruthComment {
                        id: c.id,
                        body: c.body.clone(),
                        public: c.public,
                        author_id: c.author_id,
                        created_at: time(c.created_us),
                    })
                    .collect(),
            })
            .collect();
        let deleted_ticket_ids = d
            .tickets
            .iter()
            .filter(|t| t.deleted())
            .map(|t| t.id)
            .collect();
        let articles = d
            .articles
            .iter()
            .map(|a| TruthArticle {
                id: a.id,
                title: a.title.clone(),
                body_html: a.body.clone(),
                body_text: a.text.clone(),
                html_url: self.article_html_url(a),
                url: self.article_url(a),
                section_id: a.section_id,
                author_id: a.author_id,
                locale: "en-us".into(),
                draft: false,
                user_segment_id: a.segment,
                created_at: time(a.created_us),
                updated_at: time(a.updated_us),
            })
            .collect();
        ZendeskTruth {
            tickets,
            deleted_ticket_ids,
            articles,
        }
    }
}
