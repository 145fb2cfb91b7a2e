//! The byte-driven input format of the structured targets.
//!
//! A [`Reader`] never fails: past the end of the input it returns zeros and
//! [`Reader::is_empty`] turns true, so every byte string decodes to some
//! sequence of operations. Multi-byte values are little-endian. The
//! [`Writer`] is its mirror, for the seed writer.

/// Reads operation arguments from fuzz input.
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, at: 0 }
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    /// The next byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    /// A flag: the low bit of the next byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
}

/// Encodes operation arguments, the mirror of [`Reader`].
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// Appends two bytes, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends four bytes, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a flag.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree() {
        let mut w = Writer::default();
        w.u8(7).u16(0x1234).u32(0xdead_beef).bool(true);
        let mut r = Reader::new(&w.0);
        assert_eq!(r.u8(), 7);
        assert_eq!(r.u16(), 0x1234);
        assert_eq!(r.u32(), 0xdead_beef);
        assert!(r.bool());
        assert!(r.is_empty());
        assert_eq!(r.u32(), 0);
    }
}
