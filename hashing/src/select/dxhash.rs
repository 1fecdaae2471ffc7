//! STUB (being written): DxHash selector.

use super::{validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector, SelectorParams};

#[derive(Clone, Debug)]
pub struct DxHash {
    members: Vec<Member>,
}

impl DxHash {
    pub fn new(_params: &SelectorParams, members: &[Member], _now: Nanos) -> Result<Self, SelectError> {
        validate_members(Algorithm::DxHash, members)?;
        Ok(DxHash { members: members.to_vec() })
    }
}

impl Selector for DxHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::DxHash
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
        validate_members(Algorithm::DxHash, members)?;
        self.members = members.to_vec();
        Ok(())
    }
}
