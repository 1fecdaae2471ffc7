//! STUB (being written): Toeplitz hash.
pub const MICROSOFT_RSS_KEY: [u8; 40] = [0; 40];
pub fn key_for_seed(_seed: u64) -> [u8; 40] { MICROSOFT_RSS_KEY }
#[derive(Clone)]
pub struct Toeplitz;
impl Toeplitz {
    pub fn new(_key: &[u8; 40]) -> Self { Toeplitz }
    pub fn hash(&self, input: &[u8]) -> u32 { input.iter().fold(0u32, |a, b| a.rotate_left(5) ^ *b as u32) }
}
