//! STUB (being written): jhash.
pub fn jhash(input: &[u8], _initval: u32) -> u32 { input.iter().fold(0u32, |a, b| a.rotate_left(5) ^ *b as u32) }
