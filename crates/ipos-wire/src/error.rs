//! Why a frame was refused.
//!
//! Every way a frame can fail to parse (or a builder can fail to write) is its
//! own variant, so a node can count drops by reason. [`Error::reason`] gives a
//! stable snake_case label for such counters, [`Error::index`] its position in
//! [`Error::REASONS`], so counters can live in a plain array.

use core::fmt;

/// The error type of every parser and builder in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the minimum size of the frame (or of its kind):
    /// 14 bytes of Ethernet, 30 with the ipOS header, 176 for a TCP connection
    /// packet, 36 for a UDP connection packet, 30 + 40 for a TCP data packet,
    /// 30 + 28 for a UDP data packet.
    Truncated,
    /// The Ethernet type field is not the ethertype the caller asked for.
    WrongEtherType,
    /// The ipOS checksum does not verify.
    BadChecksum,
    /// The ipOS type field holds a value this crate does not know.
    UnknownType(u8),
    /// The ipOS protocol field is neither TCP (0x01) nor UDP (0x02) in a frame
    /// whose type needs one (connection, data, acknowledgement).
    UnknownProtocol(u8),
    /// The packet inside a data frame is not what the header announces: not
    /// IPv4, an IHL below 5, the wrong transport protocol, a fragment, a TCP
    /// data offset below 5, or addresses / ports that differ from the ipOS
    /// header's source and destination.
    BadInnerPacket,
    /// A length does not add up. When parsing: the inner IPv4 total length is
    /// larger than the bytes the frame carries, or smaller than the inner IPv4
    /// header plus the minimal transport header, or the inner TCP header or UDP
    /// length runs past the IPv4 payload. When emitting: the output buffer is
    /// too small for the frame.
    BadLength,
    /// The farm authentication trailer names a mode this crate does not know
    /// (see [`crate::trailer`]).
    BadTrailer,
}

impl Error {
    /// Every reason label, in [`Error::index`] order.
    pub const REASONS: [&'static str; 8] = [
        "truncated",
        "wrong_ethertype",
        "bad_checksum",
        "unknown_type",
        "unknown_protocol",
        "bad_inner_packet",
        "bad_length",
        "bad_trailer",
    ];

    /// Stable snake_case label for drop counters (one of [`Error::REASONS`]).
    pub const fn reason(&self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// Position of [`Error::reason`] in [`Error::REASONS`]; always `< REASONS.len()`.
    pub const fn index(&self) -> usize {
        match self {
            Error::Truncated => 0,
            Error::WrongEtherType => 1,
            Error::BadChecksum => 2,
            Error::UnknownType(_) => 3,
            Error::UnknownProtocol(_) => 4,
            Error::BadInnerPacket => 5,
            Error::BadLength => 6,
            Error::BadTrailer => 7,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "frame truncated"),
            Error::WrongEtherType => write!(f, "wrong ethertype"),
            Error::BadChecksum => write!(f, "bad ipOS checksum"),
            Error::UnknownType(t) => write!(f, "unknown ipOS type 0x{t:02x}"),
            Error::UnknownProtocol(p) => write!(f, "unknown ipOS protocol 0x{p:02x}"),
            Error::BadInnerPacket => write!(f, "inner packet does not match the ipOS header"),
            Error::BadLength => write!(f, "inconsistent length"),
            Error::BadTrailer => write!(f, "unknown authentication trailer mode"),
        }
    }
}

impl std::error::Error for Error {}

/// Result with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_unique_and_indexed() {
        let all = [
            Error::Truncated,
            Error::WrongEtherType,
            Error::BadChecksum,
            Error::UnknownType(0x42),
            Error::UnknownProtocol(0x42),
            Error::BadInnerPacket,
            Error::BadLength,
            Error::BadTrailer,
        ];
        assert_eq!(all.len(), Error::REASONS.len());
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(e.reason(), Error::REASONS[i]);
            assert!(!e.to_string().is_empty());
        }
        for (i, a) in Error::REASONS.iter().enumerate() {
            assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            for b in &Error::REASONS[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            Error::UnknownType(0x42).to_string(),
            "unknown ipOS type 0x42"
        );
    }
}
