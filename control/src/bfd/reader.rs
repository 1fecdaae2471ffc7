//! A bounds-checked cursor over a byte slice: every read returns `None`
//! instead of panicking when the input is too short. (The BGP codec has the
//! same cursor, private to its module; hoist both into one when convenient.)

/// Reads big-endian integers and slices from the front of a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next `n` bytes, or `None` (consuming nothing) if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf;
        self.buf = &[];
        rest
    }

    /// One octet.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(first)
    }

    /// Four octets, network byte order.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    #[test]
    fn short_reads_return_none_and_consume_nothing() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32(), None);
        assert_eq!(r.take(2), Some(&[1, 2][..]));
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert!(r.rest().is_empty());
    }
}
