//! The seeded data set: the seeded users, spaces and page text (storage XHTML with macros, and the
//! planted phrase), built deterministically from the seed.

use std::collections::HashSet;

use super::data::{Data, Page, Space};
use super::permissions;
use super::{ConfluenceOptions, PLANTED_PHRASE};
use crate::common::{Rng, html_to_text, utc_ms};

#[rustfmt::skip]
pub(super) const VOCAB: &[&str] = &[
    "gateway", "ledger", "invoice", "rollout", "backlog", "runbook", "latency", "capacity", "onboarding", "payroll",
    "vendor", "contract", "migration", "incident", "postmortem", "budget", "forecast", "roadmap", "sprint",
    "deployment", "cluster", "firewall", "certificate", "escalation", "customer", "renewal", "pipeline", "dashboard",
    "metrics", "compliance", "policy", "training", "handbook", "benefits", "hiring", "laptop", "office", "travel",
    "expense", "security", "backup", "database", "schema", "endpoint", "integration", "webhook", "retention",
    "archive", "storage", "network", "printer", "support", "ticket", "warranty", "license", "partner", "pricing",
    "launch", "campaign",
];
#[rustfmt::skip]
pub(super) const NOUNS: &[&str] = &[
    "Guide", "Checklist", "Notes", "Plan", "Overview", "FAQ", "Runbook", "Playbook", "Summary", "Proposal",
];
#[rustfmt::skip]
pub(super) const SPACES: &[(&str, &str)] = &[
    ("ENG", "Engineering"), ("OPS", "Operations"), ("HR", "People Team"), ("FIN", "Finance"), ("SALES", "Sales"),
    ("SUP", "Support"), ("MKT", "Marketing"), ("LEGAL", "Legal"),
];
/// Atlassian account ids of the seeded users (authors and restriction targets).
#[rustfmt::skip]
pub const ACCOUNT_IDS: &[&str] = &[
    "5b10a2844c20165700ede21g", "5b10ac8d82e05b22cc7d4ef5", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
    "61f2a9b3c4d5e6f7a8b9c0d1", "70121:0e8d1c2b-3a4f-4e5d-9c8b-7a6f5e4d3c2b", "63d9e0f1a2b3c4d5e6f7a8b9",
];

pub(super) fn words(rng: &mut Rng, n: u64) -> String {
    let n = 3 + rng.below(n);
    (0..n)
        .map(|_| rng.pick(VOCAB))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn gen_body(rng: &mut Rng, planted: bool) -> String {
    let mut blocks = vec![format!("<h2>{}</h2>", capitalized(&words(rng, 2)))];
    for _ in 0..2 + rng.below(3) {
        blocks.push(match rng.below(5) {
            0 | 1 => format!("<p>{}.</p>", capitalized(&words(rng, 10))),
            2 => format!("<ul><li><p>{}</p></li><li><p>{}</p></li></ul>", words(rng, 4), words(rng, 4)),
            3 => format!(
                "<ac:structured-macro ac:name=\"info\" ac:schema-version=\"1\" ac:macro-id=\"{:08x}\"><ac:rich-text-body><p>{}</p></ac:rich-text-body></ac:structured-macro>",
                rng.next_u64() as u32,
                capitalized(&words(rng, 6))
            ),
            _ => format!("<p>{} &amp; {} &lt;draft&gt;</p>", capitalized(rng.pick(VOCAB)), words(rng, 5)),
        });
    }
    if planted {
        let at = 1 + rng.below(blocks.len() as u64) as usize;
        blocks.insert(
            at,
            format!("<p>Action items from the {PLANTED_PHRASE} are tracked here.</p>"),
        );
    }
    blocks.concat()
}

/// Storage XHTML to plain text: tags become spaces, entities are decoded, whitespace collapses.
pub fn storage_to_text(xhtml: &str) -> String {
    html_to_text(xhtml)
}

pub(super) fn new_page(
    rng: &mut Rng,
    id: u64,
    space: usize,
    parent_id: Option<u64>,
    title: String,
    created_ms: i64,
    planted: bool,
) -> Page {
    let body = gen_body(rng, planted);
    let restricted = if rng.chance(1, 6) {
        let n = 1 + rng.below(2) as usize;
        (0..n)
            .map(|i| ACCOUNT_IDS[(id as usize + i * 3) % ACCOUNT_IDS.len()].to_owned())
            .collect()
    } else {
        Vec::new()
    };
    let author = rng.pick(ACCOUNT_IDS);
    let text = storage_to_text(&body);
    Page {
        id,
        trashed: false,
        title,
        space,
        parent_id,
        author,
        created_ms,
        version: 1,
        version_ms: created_ms,
        version_author: author,
        body,
        text,
        restricted,
        restricted_groups: Vec::new(),
        protected: planted,
    }
}

pub(super) fn generate(opts: &ConfluenceOptions) -> Data {
    let mut rng = Rng::new(opts.seed);
    let n_spaces = opts.spaces.max(1);
    // Permissions are not drawn from the generator, so the pages stay what they were.
    let groups = permissions::seed_groups();
    let grants = permissions::seed_grants(&groups);
    let base = utc_ms(2025, 1, 6, 9, 0);
    let mut spaces: Vec<Space> = (0..n_spaces)
        .map(|i| {
            let (key, name) = SPACES
                .get(i)
                .map_or((format!("SP{i}"), format!("Space {i}")), |(k, n)| {
                    ((*k).into(), (*n).into())
                });
            let created_ms =
                base - (n_spaces - i) as i64 * 86_400_000 * 7 + rng.below(3_600_000) as i64;
            Space {
                id: 131_073 + i as u64 * 65_536,
                key,
                name,
                created_ms,
                homepage_id: None,
                grants: grants.clone(),
            }
        })
        .collect();
    let n = opts.pages;
    let mut planted = HashSet::new();
    while planted.len() < 3.min(n.saturating_sub(n_spaces)) {
        planted.insert(n_spaces + rng.below((n - n_spaces) as u64) as usize);
    }
    let step = (180 * 86_400_000 / n.max(1) as i64).max(4);
    let (mut pages, mut used_ms) = (Vec::<Page>::with_capacity(n), HashSet::new());
    for i in 0..n {
        let id = 1_000_000 + i as u64 * 4 + 1 + rng.below(3);
        let created = base + i as i64 * step + rng.below(step as u64 / 2) as i64;
        let page = if let Some(home_of) = spaces.get_mut(i) {
            home_of.homepage_id = Some(id);
            let title = format!("{} Home", home_of.name);
            new_page(&mut rng, id, i, None, title, created, false)
        } else {
            let space = rng.below(n_spaces as u64) as usize;
            let siblings: Vec<u64> = pages
                .iter()
                .filter(|p| p.space == space)
                .map(|p| p.id)
                .collect();
            let parent = siblings
                .get(rng.below(siblings.len().min(4) as u64) as usize)
                .copied();
            let title = format!(
                "{} {} {} {}",
                capitalized(rng.pick(VOCAB)),
                rng.pick(VOCAB),
                rng.pick(NOUNS),
                i + 1
            );
            new_page(
                &mut rng,
                id,
                space,
                parent,
                title,
                created,
                planted.contains(&i),
            )
        };
        pages.push(page);
        let p = pages.last_mut().expect("just pushed");
        p.protected |= i < n_spaces;
        if rng.chance(2, 3) {
            p.version = 2 + rng.below(4) as u32;
            p.version_ms = p.created_ms + 1 + rng.below(120 * 86_400_000) as i64;
            p.version_author = rng.pick(ACCOUNT_IDS);
        }
        while !used_ms.insert(p.version_ms) {
            p.version_ms += 1;
        }
    }
    let last_ms = used_ms.iter().copied().max().unwrap_or(base);
    Data {
        spaces,
        pages,
        groups,
        rng: Rng::new(opts.seed ^ 0xA1B2_C3D4),
        last_ms,
    }
}
