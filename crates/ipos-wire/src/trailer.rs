//! The farm authentication trailer (ipOS extension, ours): the last 36 bytes
//! of every ipOS frame a farm with a key sends.
//!
//! ```text
//!  0      1      2      4                    12                   20                          36
//! +------+------+------+--------------------+--------------------+---------------------------+
//! | mode |key id| rsvd | epoch              | sequence           | tag (GCM, 16 bytes)       |
//! +------+------+------+--------------------+--------------------+---------------------------+
//! ```
//!
//! * **mode**: [`Mode`]: 0x01 authenticated (the frame is in clear, the tag
//!   covers it), 0x02 authenticated and encrypted (every byte after the
//!   16-byte ipOS header, up to the trailer, is encrypted).
//! * **key id**: which farm key sealed the frame; 0 (the one key a farm file
//!   names). A receiver drops frames with a key id it does not hold.
//! * **reserved**: zero on emit; covered by the tag, not checked otherwise.
//! * **epoch**: the sender's boot time, microseconds since the Unix epoch,
//!   big-endian. A receiver keeps each peer's latest epoch: a higher one is a
//!   restart (the replay window starts afresh), a lower one a replay.
//! * **sequence**: big-endian; the top 8 bits name the sender's *lane* (the
//!   lcore that sealed the frame, 0 for a node with one), the 56 below count
//!   1, 2, 3… per sender, lane and epoch; the receiver keeps a replay window
//!   per sender and lane over the count. A receiver that knows no lanes sees a
//!   one-lane sender exactly as before, and the frames of a many-lane sender
//!   as one sequence whose lanes leap ahead of each other (it would refuse the
//!   slower lanes as too old): every node of a farm runs the same version.
//! * **tag**: the AEAD tag (AES-256-GCM, a key per sender and epoch, nonce
//!   [`TrailerRepr::nonce`]) over the *associated data*, which is every byte
//!   of the frame from the Ethernet destination address to the end of the
//!   sequence field (Ethernet header, ipOS header, body, the first 20 trailer
//!   bytes). In mode 0x02 the body is the ciphertext, the Ethernet and ipOS
//!   headers are the associated data, and the trailer head is bound through
//!   the key and the nonce (the epoch is in the key, mode, key id and
//!   sequence in the nonce; the reserved bytes must be zero).
//!
//! The trailer is checked before anything else of the frame is parsed, and
//! cut off before the ipOS parser sees it.
//!
//! **An implementation without this extension** sees 36 bytes after the end
//! of the frame: after the inner IPv4 packet of a data frame, the connection
//! information of a connection packet, or the header of an acknowledgement
//! they look like Ethernet padding and are ignored; an extension body
//! (advert, notice) is 36 bytes longer than its fields, and a parser that
//! insists on the exact length refuses it. A farm must use one setting on
//! every node. (With the trailer no ipOS frame is below Ethernet's 60-byte
//! minimum, so the trailer is always the frame's last 36 bytes: nothing pads
//! after it.)

use crate::error::{Error, Result};

/// Length of the trailer.
pub const TRAILER_LEN: usize = 36;
/// Length of the trailer's tag.
pub const TAG_LEN: usize = 16;
/// Length of the trailer before the tag (the part covered as associated data).
pub const TRAILER_HEAD_LEN: usize = TRAILER_LEN - TAG_LEN;

mod field {
    use core::ops::Range;
    pub const MODE: usize = 0;
    pub const KEY_ID: usize = 1;
    pub const RESERVED: Range<usize> = 2..4;
    pub const EPOCH: Range<usize> = 4..12;
    pub const SEQ: Range<usize> = 12..20;
}

/// What the tag protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 0x01: authenticated; the frame travels in clear.
    Authenticated,
    /// 0x02: authenticated and encrypted after the ipOS header.
    Encrypted,
}

impl Mode {
    /// The mode byte.
    pub const fn to_byte(self) -> u8 {
        match self {
            Mode::Authenticated => 0x01,
            Mode::Encrypted => 0x02,
        }
    }

    /// The mode of a mode byte, if known.
    pub const fn from_byte(b: u8) -> Option<Mode> {
        match b {
            0x01 => Some(Mode::Authenticated),
            0x02 => Some(Mode::Encrypted),
            _ => None,
        }
    }
}

/// The trailer's fields (the tag is handled by the caller's AEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerRepr {
    /// What the tag protects.
    pub mode: Mode,
    /// The key that sealed the frame.
    pub key_id: u8,
    /// The sender's boot time, µs since the Unix epoch.
    pub epoch: u64,
    /// Per sender and epoch, from 1.
    pub seq: u64,
}

impl TrailerRepr {
    /// Reads the trailer head: the 20 bytes before the tag.
    /// An unknown mode is [`Error::BadTrailer`].
    pub fn parse(head: &[u8]) -> Result<TrailerRepr> {
        let head = head.get(..TRAILER_HEAD_LEN).ok_or(Error::Truncated)?;
        let mode = Mode::from_byte(head[field::MODE]).ok_or(Error::BadTrailer)?;
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&head[field::EPOCH]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&head[field::SEQ]);
        Ok(TrailerRepr {
            mode,
            key_id: head[field::KEY_ID],
            epoch: u64::from_be_bytes(epoch),
            seq: u64::from_be_bytes(seq),
        })
    }

    /// Writes the trailer head into the first 20 bytes of `out`.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let head = out.get_mut(..TRAILER_HEAD_LEN).ok_or(Error::BadLength)?;
        head[field::MODE] = self.mode.to_byte();
        head[field::KEY_ID] = self.key_id;
        head[field::RESERVED].fill(0);
        head[field::EPOCH].copy_from_slice(&self.epoch.to_be_bytes());
        head[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        Ok(())
    }

    /// The 12-byte GCM nonce: the sequence number (big-endian), then mode,
    /// key id and two zero bytes. The key is the sender's for this epoch
    /// (see the node's key derivation), so a nonce never repeats under a key.
    pub fn nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[0..8].copy_from_slice(&self.seq.to_be_bytes());
        n[8] = self.mode.to_byte();
        n[9] = self.key_id;
        n
    }
}

/// A sealed frame split for checking: `(covered, tag)` where `covered` is
/// everything before the tag (frame and trailer head). Frames shorter than
/// the Ethernet and ipOS headers plus the trailer are [`Error::Truncated`].
pub fn split_sealed(frame: &[u8]) -> Result<(&[u8], &[u8])> {
    if frame.len() < crate::frame::MIN_FRAME_LEN + TRAILER_LEN {
        return Err(Error::Truncated);
    }
    Ok(frame.split_at(frame.len() - TAG_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_vector() {
        let t = TrailerRepr {
            mode: Mode::Authenticated,
            key_id: 0,
            epoch: 0x0006_1a2b_3c4d_5e6f,
            seq: 0x0102,
        };
        let mut out = [0xaau8; TRAILER_HEAD_LEN];
        t.emit(&mut out).unwrap();
        assert_eq!(
            out,
            [
                0x01, 0x00, 0x00, 0x00, // mode, key id, reserved
                0x00, 0x06, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, // epoch
                0, 0, 0, 0, 0, 0, 0x01, 0x02, // sequence
            ]
        );
        assert_eq!(TrailerRepr::parse(&out), Ok(t));
        let n = t.nonce();
        assert_eq!(&n[..8], &out[12..20]);
        assert_eq!(&n[8..], &[0x01, 0, 0, 0]);
    }

    #[test]
    fn encrypted_mode_and_refusals() {
        let mut out = [0u8; TRAILER_HEAD_LEN];
        let t = TrailerRepr {
            mode: Mode::Encrypted,
            key_id: 3,
            epoch: 1,
            seq: u64::MAX,
        };
        t.emit(&mut out).unwrap();
        assert_eq!(out[0], 0x02);
        assert_eq!(out[1], 3);
        assert_eq!(TrailerRepr::parse(&out), Ok(t));
        out[0] = 0x07;
        assert_eq!(TrailerRepr::parse(&out), Err(Error::BadTrailer));
        assert_eq!(TrailerRepr::parse(&out[..19]), Err(Error::Truncated));
        assert_eq!(t.emit(&mut [0u8; 19]), Err(Error::BadLength));
        assert_eq!(split_sealed(&[0u8; 65]), Err(Error::Truncated));
        let f = [0u8; 66];
        let (covered, tag) = split_sealed(&f).unwrap();
        assert_eq!((covered.len(), tag.len()), (50, 16));
    }
}
