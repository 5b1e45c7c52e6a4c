//! Changes upstream that alter who reads a request (participants, organizations): each is an
//! edit of the issue, so its `updated` moves and the next JQL `updated >=` run brings it.

use super::Jira;
use super::JiraTruthRequest;
use crate::server::RunningFake;

impl RunningFake<Jira> {
    /// Adds (`add`) or removes a request participant by accountId; `None` for an unknown key or
    /// user. The request is updated now.
    pub fn set_participant(
        &self,
        key: &str,
        account_id: &str,
        add: bool,
    ) -> Option<JiraTruthRequest> {
        let user = super::USERS.iter().position(|(id, _)| *id == account_id)?;
        self.edit(key, |i| {
            i.participants.retain(|p| *p != user);
            if add {
                i.participants.push(user);
            }
        })
    }

    /// Shares the request with a customer organization (`add`) or stops sharing it.
    pub fn set_organization(&self, key: &str, org: u64, add: bool) -> Option<JiraTruthRequest> {
        super::ORGANIZATIONS.iter().find(|(id, _)| *id == org)?;
        self.edit(key, |i| {
            i.organizations.retain(|o| *o != org);
            if add {
                i.organizations.push(org);
            }
        })
    }

    fn edit(
        &self,
        key: &str,
        change: impl FnOnce(&mut super::data::Issue),
    ) -> Option<JiraTruthRequest> {
        {
            let mut d = self.state.data();
            let at = d.find(key)?;
            let now = d.tick();
            let issue = &mut d.issues[at];
            change(issue);
            issue.updated_ms = now;
        }
        self.truth().requests.into_iter().find(|r| r.key == key)
    }
}
