//! STUB (being written): JumpHash selector.

use super::{validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector, SelectorParams};

#[derive(Clone, Debug)]
pub struct JumpHash {
    members: Vec<Member>,
}

impl JumpHash {
    pub fn new(_params: &SelectorParams, members: &[Member], _now: Nanos) -> Result<Self, SelectError> {
        validate_members(Algorithm::Jump, members)?;
        Ok(JumpHash { members: members.to_vec() })
    }
}

impl Selector for JumpHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Jump
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
        validate_members(Algorithm::Jump, members)?;
        self.members = members.to_vec();
        Ok(())
    }
}
