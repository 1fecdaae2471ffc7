//! STUB (being written): Resilient selector.

use super::{validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector, SelectorParams};

#[derive(Clone, Debug)]
pub struct Resilient {
    members: Vec<Member>,
}

impl Resilient {
    pub fn new(_params: &SelectorParams, members: &[Member], _now: Nanos) -> Result<Self, SelectError> {
        validate_members(Algorithm::Resilient, members)?;
        Ok(Resilient { members: members.to_vec() })
    }
}

impl Selector for Resilient {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Resilient
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
        validate_members(Algorithm::Resilient, members)?;
        self.members = members.to_vec();
        Ok(())
    }
}
