//! The per-user index of open grants, which the decision reads on every connection.
//!
//! Each entry copies what the decision needs of one pending or approved grant (status,
//! times, role, the two host patterns) so a decision reads the user's entries as one
//! contiguous slice. Resolving ids through the 100k-entry grant map instead cost a B-tree
//! descent and a cache miss on a 500-byte `Grant` per open grant, which is what made the
//! decision slow for a user holding many open grants (BENCHMARKING.md).
//!
//! Invariant: for every open grant `g` (not final, and not an approved extension) there is
//! exactly one entry, under `g.user`, equal to `OpenGrant::of(g)`. `apply` keeps it by calling
//! [`State::index_open`] when a grant is requested, [`State::refresh_open`] after it changes
//! and [`State::remove_open`] when it leaves the open set.

use super::State;
use crate::grant::{self, Grant, GrantId, GrantStatus};
use crate::pattern::HostPattern;
use chrono::{DateTime, Utc};

/// The decision's view of one open grant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenGrant {
    pub id: GrantId,
    pub status: GrantStatus,
    /// An extension request: never grants access itself.
    pub extension: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub role: String,
    pub hosts: HostPattern,
    pub approved_hosts: Option<HostPattern>,
}

impl OpenGrant {
    pub fn of(grant: &Grant) -> OpenGrant {
        OpenGrant {
            id: grant.id,
            status: grant.status,
            extension: grant.extends.is_some(),
            starts_at: grant.starts_at,
            expires_at: grant.expires_at,
            role: grant.role.clone(),
            // Shared, not copied: a pattern clone is two reference counts.
            hosts: grant.hosts.clone(),
            approved_hosts: grant.approved_hosts.clone(),
        }
    }

    /// As [`Grant::is_active`].
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        grant::in_force(
            self.status,
            self.extension,
            self.starts_at,
            self.expires_at,
            now,
        )
    }

    /// As [`Grant::covers_host`].
    pub fn covers_host(&self, host: &str) -> bool {
        grant::scope_covers(&self.hosts, self.approved_hosts.as_ref(), host)
    }
}

impl State {
    /// The user's open grants, in id order.
    pub(crate) fn open_entries(&self, user: &str) -> &[OpenGrant] {
        self.open_by_user
            .get(user)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// A grant was just inserted: add its entry.
    pub(super) fn index_open(&mut self, id: GrantId) {
        let Some(grant) = self.grants.get(&id) else {
            return;
        };
        // Look up by `&str` first: most requests come from users who already have an entry,
        // and cloning the name for every request showed up in the replay profile.
        match self.open_by_user.get_mut(grant.user.as_str()) {
            Some(entries) => entries.push(OpenGrant::of(grant)),
            None => {
                self.open_by_user
                    .insert(grant.user.clone(), vec![OpenGrant::of(grant)]);
            }
        }
    }

    /// A grant that stays open changed (approved, or its expiry moved): copy it again.
    pub(super) fn refresh_open(&mut self, id: GrantId) {
        let Some(grant) = self.grants.get(&id) else {
            return;
        };
        if let Some(entry) = self
            .open_by_user
            .get_mut(grant.user.as_str())
            .and_then(|entries| entries.iter_mut().find(|e| e.id == id))
        {
            *entry = OpenGrant::of(grant);
        }
    }

    /// A grant left the open set (final, or an approved extension).
    pub(super) fn remove_open(&mut self, user: &str, id: GrantId) {
        if let Some(entries) = self.open_by_user.get_mut(user) {
            entries.retain(|open| open.id != id);
            if entries.is_empty() {
                // Keep the map to users with open grants, so it does not grow with every
                // user who ever asked.
                self.open_by_user.remove(user);
            }
        }
    }
}

#[cfg(test)]
impl State {
    /// Panics unless the index holds exactly the open grants, each as `OpenGrant::of` it
    /// (the module's invariant).
    pub(crate) fn check_open_index(&self) {
        let mut want: Vec<(&str, OpenGrant)> = self
            .grants
            .values()
            .filter(|g| !g.status.is_final())
            .filter(|g| !(g.extends.is_some() && g.status == GrantStatus::Approved))
            .map(|g| (g.user.as_str(), OpenGrant::of(g)))
            .collect();
        let mut got: Vec<(&str, OpenGrant)> = self
            .open_by_user
            .iter()
            .flat_map(|(user, entries)| {
                assert!(!entries.is_empty(), "empty entry list kept for {user}");
                entries.iter().map(move |e| (user.as_str(), e.clone()))
            })
            .collect();
        want.sort_by_key(|(_, e)| e.id);
        got.sort_by_key(|(_, e)| e.id);
        assert_eq!(
            got, want,
            "the open-grant index is out of step with the grants"
        );
    }
}
