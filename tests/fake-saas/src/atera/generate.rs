//! The seeded data set: customers, technicians and end users (the Microsoft Graph fake's first
//! users), ticket and comment text, and the initial generation from the seed.

use super::data::{Data, refresh};
use super::{AteraOptions, AteraTruthComment, AteraTruthTicket, FIRST_TICKET_ID};
use crate::common::{Rng, html_escape, rfc3339_secs, utc_ms};

pub(super) const STATUSES: [&str; 4] = ["Open", "Pending", "Resolved", "Closed"];
pub(super) const PRIORITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];
pub(super) const TYPES: [&str; 4] = ["Problem", "Request", "Incident", "Change"];
pub(super) const CUSTOMERS: [&str; 6] = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Foods",
];
pub(super) const TECHS: [(&str, &str); 3] =
    [("Tara", "Nguyen"), ("Omar", "Haddad"), ("Lena", "Vogel")];
/// End users: the first five people of the Microsoft Graph fake's directory (same names, same
/// `contoso.com` mail), as an MSP's customer and its Microsoft 365 tenant share them, so a
/// ticket's end user can be looked up in Graph by email.
pub(super) const USERS: [(&str, &str); 5] = [
    ("Ada", "Adams"),
    ("Ben", "Adams"),
    ("Chloe", "Adams"),
    ("Dev", "Adams"),
    ("Emma", "Adams"),
];
/// The end users' mail domain (the Graph fake's).
pub(super) const USER_DOMAIN: &str = "contoso.com";
#[rustfmt::skip]
pub(super) const WORDS: &[&str] = &[
    "printer", "vpn", "laptop", "outlook", "backup", "firewall", "server", "disk", "agent", "patch",
    "antivirus", "password", "license", "monitor", "switch", "router", "wifi", "update", "restart", "alert",
];

pub(super) fn email(first: &str, last: &str, domain: &str) -> String {
    format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase())
}

pub(super) fn sentence(rng: &mut Rng, n: u64) -> String {
    let words: Vec<&str> = (0..n).map(|_| rng.pick(WORDS)).collect();
    let mut s = words.join(" ");
    s[..1].make_ascii_uppercase();
    s + "."
}

pub(super) fn comment(
    rng: &mut Rng,
    at: i64,
    tech: bool,
    t: &AteraTruthTicket,
) -> AteraTruthComment {
    let n = 6 + rng.below(10);
    let text = sentence(rng, n);
    let (first, last, mail) = if tech {
        let (f, l) = rng.pick(&TECHS);
        (f, l, email(f, l, "msp.example"))
    } else {
        let mail = t.end_user_email.clone();
        let (f, l) = USERS
            .iter()
            .copied()
            .find(|(f, l)| email(f, l, USER_DOMAIN) == mail)
            .unwrap_or(USERS[0]);
        (f, l, mail)
    };
    AteraTruthComment {
        date: rfc3339_secs(at / 1000),
        comment_html: format!("<div><p>{}</p></div>", html_escape(&text)),
        comment: text,
        is_internal: tech && rng.chance(1, 4),
        email: mail,
        first_name: first.into(),
        last_name: last.into(),
        by_technician: tech,
    }
}

impl Data {
    pub(super) fn new_ticket(&mut self, id: u64, created: i64) -> (AteraTruthTicket, i64) {
        let rng = &mut self.rng;
        let user = rng.below(USERS.len() as u64);
        let (uf, ul) = USERS[user as usize];
        let (tf, tl) = rng.pick(&TECHS);
        let customer = rng.below(CUSTOMERS.len() as u64);
        let mut t = AteraTruthTicket {
            id,
            number: id,
            title: format!(
                "{} {}",
                rng.pick(WORDS),
                rng.pick(&["down", "slow", "error", "request"])
            ),
            status: "Open".into(),
            priority: rng.pick(&PRIORITIES).into(),
            ticket_type: rng.pick(&TYPES).into(),
            created: rfc3339_secs(created / 1000),
            resolved: None,
            customer_id: 100 + customer,
            customer_name: CUSTOMERS[customer as usize].into(),
            end_user_id: 500 + user,
            end_user_first_name: uf.into(),
            end_user_last_name: ul.into(),
            end_user_email: email(uf, ul, USER_DOMAIN),
            technician_email: email(tf, tl, "msp.example"),
            first_comment: String::new(),
            last_end_user_comment: String::new(),
            last_technician_comment: String::new(),
            last_end_user_comment_timestamp: None,
            last_technician_comment_timestamp: None,
            modified: String::new(),
            comments: Vec::new(),
        };
        let first = comment(rng, created, false, &t);
        t.comments.push(first);
        refresh(&mut t);
        t.modified = t.created.clone();
        (t, created)
    }
}

pub(super) fn generate(opts: &AteraOptions) -> Data {
    let mut data = Data {
        tickets: Vec::with_capacity(opts.tickets),
        writes: Vec::new(),
        rng: Rng::new(opts.seed),
        last_ms: 0,
        next_action: 50_001,
    };
    let start = utc_ms(2025, 1, 6, 8, 0);
    for k in 0..opts.tickets {
        let created = start + k as i64 * 3_600_000 + data.rng.below(3_000_000) as i64;
        let (mut t, mut modified) = data.new_ticket(FIRST_TICKET_ID + k as u64, created);
        for j in 0..data.rng.below(5) {
            let at = created + (j as i64 + 1) * 1_800_000 + data.rng.below(600_000) as i64;
            let c = comment(&mut data.rng, at, j % 2 == 0, &t);
            t.comments.push(c);
            modified = at;
        }
        let status = data.rng.pick(&STATUSES);
        if matches!(status, "Resolved" | "Closed") {
            modified += 3_600_000;
            t.resolved = Some(rfc3339_secs(modified / 1000));
        }
        t.status = status.into();
        refresh(&mut t);
        t.modified = rfc3339_secs(modified / 1000);
        data.tickets.push((t, modified));
    }
    data
}
