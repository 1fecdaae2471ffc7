//! STUB (being written): Rendezvous selector.

use super::{validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector, SelectorParams};

#[derive(Clone, Debug)]
pub struct Rendezvous {
    members: Vec<Member>,
}

impl Rendezvous {
    pub fn new(_params: &SelectorParams, members: &[Member], _now: Nanos) -> Result<Self, SelectError> {
        validate_members(Algorithm::Rendezvous, members)?;
        Ok(Rendezvous { members: members.to_vec() })
    }
}

impl Selector for Rendezvous {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Rendezvous
    }
    fn members(&self) -> &[Member] {
        &self.members
    }
    fn select(&self, hash: u32) -> Option<MemberId> {
        if self.members.is_empty() {
            return None;
        }
        Some(self.members[hash as usize % self.members.len()].id)
    }
    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        validate_members(Algorithm::Rendezvous, members)?;
        self.members = members.to_vec();
        Ok(())
    }
}
