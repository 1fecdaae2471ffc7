//! STUB (being written): CRC hashes.
use super::HashFunction;
pub fn crc32_init(_seed: u64) -> u32 { 0 }
pub fn crc32(_init: u32, input: &[u8]) -> u32 { input.iter().fold(0u32, |a, b| a.rotate_left(5) ^ *b as u32) }
pub fn crc16_init(_f: HashFunction, _seed: u64) -> u16 { 0 }
pub fn crc16(_f: HashFunction, _init: u16, input: &[u8]) -> u16 { input.iter().fold(0u16, |a, b| a.rotate_left(5) ^ *b as u16) }
