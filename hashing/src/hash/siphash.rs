//! STUB (being written): Linux-like SipHash.
#[derive(Clone)]
pub struct LinuxSipHash;
impl LinuxSipHash {
    pub fn new(_seed: u64) -> Self { LinuxSipHash }
    pub fn hash(&self, input: &[u8]) -> u32 { input.iter().fold(0u32, |a, b| a.rotate_left(5) ^ *b as u32) }
}
