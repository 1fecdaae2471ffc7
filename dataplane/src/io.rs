//! Batched packet I/O: a fixed-capacity [`PacketBatch`] of reusable buffers and
//! the [`PacketIo`] trait every backend implements ([`MemoryIo`] here; packet
//! sockets later).

use std::collections::{BTreeMap, VecDeque};

/// Default number of packets in a batch.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Default size of one packet buffer: an Ethernet frame of MTU 1500 with two
/// VLAN tags fits with room to spare.
pub const DEFAULT_BUFFER_SIZE: usize = 2048;

/// One packet buffer of a batch: storage allocated once, the frame's length
/// and its port (ingress on receive, egress on transmit).
#[derive(Clone, Debug)]
pub struct PacketBuf {
    data: Box<[u8]>,
    len: usize,
    port: u32,
}

impl PacketBuf {
    fn new(size: usize) -> Self {
        PacketBuf {
            data: vec![0; size].into_boxed_slice(),
            len: 0,
            port: 0,
        }
    }

    /// The frame.
    pub fn frame(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The frame, writable in place.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }

    /// The whole storage, for a backend or builder writing a new frame; call
    /// [`set_len`](Self::set_len) afterwards.
    pub fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The storage size: the longest frame this buffer holds.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// The frame's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the frame's length, clamped to the capacity.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.data.len());
    }

    /// The port: ingress after receive, egress before transmit.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sets the port.
    pub fn set_port(&mut self, port: u32) {
        self.port = port;
    }

    /// Copies `frame` in; `false` (buffer unchanged) if it does not fit.
    pub fn fill(&mut self, port: u32, frame: &[u8]) -> bool {
        match self.data.get_mut(..frame.len()) {
            Some(dst) => {
                copy_frame(dst, frame);
                self.len = frame.len();
                self.port = port;
                true
            }
            None => false,
        }
    }
}

/// `dst.copy_from_slice(src)` (same lengths), with the minimum-size frames
/// (32 to 64 bytes) copied as two overlapping 32-byte blocks in line: a
/// `memcpy` call of unknown length costs several nanoseconds, a noticeable
/// share of a receive that copies 64-byte frames.
#[inline]
fn copy_frame(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (32..=64).contains(&n) && dst.len() == n {
        if let (Some(head), Some(tail)) = (src.first_chunk::<32>(), src.last_chunk::<32>()) {
            if let Some(d) = dst.first_chunk_mut::<32>() {
                *d = *head;
            }
            if let Some(d) = dst.last_chunk_mut::<32>() {
                *d = *tail;
            }
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// A fixed number of packet buffers, allocated once and reused across calls.
///
/// Slots `0..len()` hold packets. [`swap_into`](Self::swap_into) moves a
/// packet to another batch by exchanging buffers, so forwarding copies no
/// bytes and allocates nothing.
#[derive(Clone, Debug)]
pub struct PacketBatch {
    bufs: Vec<PacketBuf>,
    len: usize,
}

impl Default for PacketBatch {
    fn default() -> Self {
        PacketBatch::new(DEFAULT_BATCH_SIZE, DEFAULT_BUFFER_SIZE)
    }
}

impl PacketBatch {
    /// A batch of `capacity` buffers of `buffer_size` bytes each.
    pub fn new(capacity: usize, buffer_size: usize) -> Self {
        PacketBatch {
            bufs: (0..capacity).map(|_| PacketBuf::new(buffer_size)).collect(),
            len: 0,
        }
    }

    /// How many packets the batch holds at most.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// How many packets it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no packet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Forgets every packet (the buffers stay allocated).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Copies `frame` into the next free slot; `false` if the batch is full
    /// or the frame does not fit a buffer.
    pub fn push(&mut self, port: u32, frame: &[u8]) -> bool {
        let filled = self
            .bufs
            .get_mut(self.len)
            .is_some_and(|buf| buf.fill(port, frame));
        if filled {
            self.len += 1;
        }
        filled
    }

    /// The next free slot, to be written in place and then committed with
    /// [`commit`](Self::commit); `None` if the batch is full.
    pub fn next_free(&mut self) -> Option<&mut PacketBuf> {
        self.bufs.get_mut(self.len)
    }

    /// Counts the slot returned by [`next_free`](Self::next_free) as a packet.
    pub fn commit(&mut self) {
        self.len = (self.len + 1).min(self.bufs.len());
    }

    /// Packet `i`, if `i < len()`.
    pub fn get(&self, i: usize) -> Option<&PacketBuf> {
        self.bufs[..self.len].get(i)
    }

    /// Packet `i`, writable, if `i < len()`.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut PacketBuf> {
        self.bufs[..self.len].get_mut(i)
    }

    /// The packets, in order.
    pub fn iter(&self) -> impl Iterator<Item = &PacketBuf> {
        self.bufs[..self.len].iter()
    }

    /// Moves packet `i` to the end of `other` by exchanging buffers (packet
    /// `i`'s slot then holds a stale buffer). `false` if `i` is out of range
    /// or `other` is full.
    pub fn swap_into(&mut self, i: usize, other: &mut PacketBatch) -> bool {
        let (Some(mine), Some(theirs)) = (self.bufs[..self.len].get_mut(i), other.next_free())
        else {
            return false;
        };
        // Field by field: `mem::swap` of the whole struct moves the 4-byte
        // port with its padding as one 8-byte word, which cannot be
        // forwarded from the 4-byte store of a `set_port` just before (the
        // pipeline's forwarding path), a stall of about 10 ns per packet.
        std::mem::swap(&mut mine.data, &mut theirs.data);
        std::mem::swap(&mut mine.len, &mut theirs.len);
        std::mem::swap(&mut mine.port, &mut theirs.port);
        other.commit();
        true
    }
}

/// A batched packet backend: memory queues, packet-socket rings, ...
pub trait PacketIo {
    /// Appends received frames to `batch` (up to its free slots), each with
    /// its ingress port; returns how many were added.
    fn receive(&mut self, batch: &mut PacketBatch) -> usize;

    /// Sends the frames of `batch` on their ports; returns how many were sent
    /// (the rest are dropped). The caller clears the batch afterwards.
    fn transmit(&mut self, batch: &PacketBatch) -> usize;
}

/// An in-memory backend for tests and the emulator: per-port receive queues
/// filled by [`inject`](Self::inject), and a capture of every transmitted
/// frame.
#[derive(Clone, Debug, Default)]
pub struct MemoryIo {
    rx: BTreeMap<u32, VecDeque<Vec<u8>>>,
    queued: usize,
    next_port: u32,
    transmitted: Vec<(u32, Vec<u8>)>,
    oversize: u64,
}

impl MemoryIo {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `frame` as received on `port`.
    pub fn inject(&mut self, port: u32, frame: impl Into<Vec<u8>>) {
        self.rx.entry(port).or_default().push_back(frame.into());
        self.queued += 1;
    }

    /// Frames waiting to be received.
    pub fn pending(&self) -> usize {
        self.queued
    }

    /// Every frame transmitted since the last call, in order, with its
    /// egress port.
    pub fn take_transmitted(&mut self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut self.transmitted)
    }

    /// Received frames dropped because they did not fit a batch buffer.
    pub fn oversize_drops(&self) -> u64 {
        self.oversize
    }

    /// The next port with a queued frame, starting at `self.next_port`
    /// (round robin across ports).
    fn next_queue(&mut self) -> Option<(u32, &mut VecDeque<Vec<u8>>)> {
        let start = self.next_port;
        let port = self
            .rx
            .range(start..)
            .chain(self.rx.range(..start))
            .find(|(_, q)| !q.is_empty())
            .map(|(&p, _)| p)?;
        self.next_port = port.wrapping_add(1);
        self.rx.get_mut(&port).map(|q| (port, q))
    }
}

impl PacketIo for MemoryIo {
    fn receive(&mut self, batch: &mut PacketBatch) -> usize {
        let mut added = 0;
        while !batch.is_full() {
            let Some((port, queue)) = self.next_queue() else {
                break;
            };
            let Some(frame) = queue.pop_front() else {
                break;
            };
            self.queued -= 1;
            if batch.push(port, &frame) {
                added += 1;
            } else {
                self.oversize += 1;
            }
        }
        added
    }

    fn transmit(&mut self, batch: &PacketBatch) -> usize {
        self.transmitted
            .extend(batch.iter().map(|b| (b.port(), b.frame().to_vec())));
        batch.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_copies_frames_of_every_length_exactly() {
        let mut buf = PacketBuf::new(128);
        for len in 0..=128usize {
            let frame: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            assert!(buf.fill(3, &frame));
            assert_eq!(buf.frame(), &frame[..]);
            assert_eq!(buf.port(), 3);
        }
        assert!(!buf.fill(0, &[0; 129]));
    }

    #[test]
    fn swap_into_moves_the_frame_and_its_port() {
        let mut rx = PacketBatch::new(2, 64);
        let mut tx = PacketBatch::new(1, 64);
        assert!(rx.push(1, &[1, 2, 3]));
        assert!(rx.push(2, &[4, 5]));
        rx.get_mut(1).unwrap().set_port(9);
        assert!(rx.swap_into(1, &mut tx));
        assert_eq!(tx.len(), 1);
        let sent = tx.get(0).unwrap();
        assert_eq!((sent.port(), sent.frame()), (9, &[4u8, 5][..]));
        assert!(!rx.swap_into(0, &mut tx), "tx is full");
    }
}
