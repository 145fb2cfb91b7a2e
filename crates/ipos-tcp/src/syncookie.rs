//! SYN cookies (RFC 4987 section 3.6), encoded the way Linux encodes them
//! (`net/ipv4/syncookies.c`): a server under a SYN flood answers a SYN with a
//! SYN-ACK whose initial sequence number *is* the connection's state, keeps
//! nothing, and rebuilds the connection from the ACK that returns it.
//!
//! # The cookie (the server's ISN)
//!
//! With `h(c, n)` the low 32 bits of SipHash-2-4 under secret `c` of the 16 bytes
//! client address, server address (4 + 4, network order), client port, server port
//! (2 + 2, big-endian) and `n` (4, big-endian), `count` the [`counter`] at the time
//! the SYN-ACK is sent, `isn` the client's ISN and `mss_index` the MSS's index in
//! [`MSS_TABLE`]:
//!
//! ```text
//! cookie = h(0, 0) + isn + (count << 24) + ((h(1, count) + mss_index) mod 2^24)   (mod 2^32)
//! ```
//!
//! | bits | holds |
//! |---|---|
//! | 31..24 | the low 8 bits of `count` (added, not masked: `h(0, 0) + isn` hides them) |
//! | 23..0 | `h(1, count) + mss_index`, mod 2^24 |
//!
//! To check a cookie (the ACK's number less one) the receiver subtracts
//! `h(0, 0) + isn` (the ACK's sequence number less one), reads the counter from the
//! top 8 bits, refuses it unless the current counter is at most
//! [`MAX_AGE`]` - 1` ahead (so the current and the previous counter values pass: a
//! cookie lives between 64 and 128 s), and subtracts `h(1, count)` from the low 24
//! bits: what is left must be an index into [`MSS_TABLE`]. A guessed cookie passes
//! with probability about 2^-22 per try (4 valid values out of 2^24, given the right
//! counter), as in Linux. As in Linux too, the MSS index is added, not
//! authenticated: whoever holds a valid cookie can change its two low bits (or the
//! ISN by as much) and get another MSS of the table, nothing else. The secret is random per node ([`SynCookies::random`]) and
//! the counter is hashed with it, so the key in effect rotates every period.
//!
//! Differences from Linux, none visible to a client: the counter ticks every 64 s
//! (Linux: 60 s, `TCP_SYNCOOKIE_PERIOD`), and the hash input is laid out in network
//! order instead of Linux's `siphash_4u32` of host-order words (no one but the node
//! that made a cookie ever checks it). [`MSS_TABLE`] is Linux's `msstab`.
//!
//! # The options (in the SYN-ACK's TSval)
//!
//! A cookie has no room for the other options of the SYN. When the SYN carried the
//! timestamp option, Linux (`cookie_init_timestamp`, `cookie_timestamp_decode`)
//! stores them in the low [`TS_BITS`] bits of the SYN-ACK's TSval, which the client
//! echoes in the TSecr of its ACK:
//!
//! | TSval bits | holds |
//! |---|---|
//! | 3..0 | the client's window-scale shift (0..=14); 15 (`0xf`): the SYN offered no window scaling |
//! | 4 | SACK-permitted |
//! | 5 | ECN (always 0 here: ECN is not implemented) |
//!
//! The TSval is the timestamp clock with its low 6 bits replaced by these; when that
//! would be ahead of the clock, 64 is subtracted, so the later TSvals of the
//! connection never go backwards. Without timestamps in the SYN there is nowhere to
//! keep them, and the SYN-ACK offers neither window scaling nor SACK (Linux clears
//! the options then, `tcp_clear_options` in `tcp_conn_request`).

use core::fmt;

use siphasher::sip::SipHasher24;
use smoltcp::time::Instant;

use ipos_wire::Flow;

/// MSS values a cookie can carry (Linux's `msstab`): a SYN's MSS is rounded down
/// to one of these (below 536: 536, the RFC 9293 default).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Length of one counter period, in microseconds (64 s).
pub const COUNTER_PERIOD_US: i64 = 64_000_000;
/// A cookie is accepted while the counter is fewer than this many periods past the
/// one it was made in (Linux's `MAX_SYNCOOKIE_AGE`): the current and the previous one.
pub const MAX_AGE: u32 = 2;
/// How long after the last cookie went out one may still come back (a node checks
/// ACKs for cookies only within this time, as Linux does with
/// `tcp_synq_no_recent_overflow`): [`MAX_AGE`] periods.
pub const VALID_US: i64 = MAX_AGE as i64 * COUNTER_PERIOD_US;
/// Low bits of the SYN-ACK's TSval that carry the options.
pub const TS_BITS: u32 = 6;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
const TS_OPT_WSCALE_MASK: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TS_OPT_ECN: u32 = 1 << 5;

/// Why a cookie was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieError {
    /// The counter it carries is not the current or the previous one (most forged or
    /// tampered cookies end here too: their top bits read as a random counter).
    TooOld,
    /// The counter is recent but the rest does not check out (wrong 4-tuple, wrong
    /// client ISN, tampered).
    BadHash,
    /// The segment is not an ACK that could return a cookie (no ACK, or SYN or RST
    /// set), or it does not parse.
    NotCookieAck,
    /// The options echoed in its TSecr ask for something this endpoint does not do
    /// (timestamps or SACK switched off in its configuration).
    OptionsRefused,
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CookieError::TooOld => "SYN cookie from an expired counter period",
            CookieError::BadHash => "SYN cookie does not match the connection",
            CookieError::NotCookieAck => "segment cannot return a SYN cookie",
            CookieError::OptionsRefused => "SYN cookie options not supported",
        })
    }
}

impl std::error::Error for CookieError {}

/// The counter period `now` falls in.
pub fn counter(now: Instant) -> u32 {
    (now.total_micros().max(0) / COUNTER_PERIOD_US) as u32
}

/// The index in [`MSS_TABLE`] of the largest entry not above `mss` (0 below 536).
pub fn mss_index(mss: u16) -> u8 {
    MSS_TABLE.iter().rposition(|&m| mss >= m).unwrap_or(0) as u8
}

/// A node's cookie secret: two SipHash-2-4 keys (Linux's `syncookie_secret[2]`).
#[derive(Clone)]
pub struct SynCookies {
    keys: [SipHasher24; 2],
}

impl fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SynCookies { .. }")
    }
}

impl SynCookies {
    /// Cookies under the given keys (tests; a node uses [`SynCookies::random`]).
    pub fn new(keys: [[u8; 16]; 2]) -> SynCookies {
        SynCookies {
            keys: [
                SipHasher24::new_with_key(&keys[0]),
                SipHasher24::new_with_key(&keys[1]),
            ],
        }
    }

    /// Cookies under keys from the operating system's random source.
    pub fn random() -> Result<SynCookies, getrandom::Error> {
        let mut k = [[0u8; 16]; 2];
        getrandom::fill(&mut k[0])?;
        getrandom::fill(&mut k[1])?;
        Ok(SynCookies::new(k))
    }

    /// `h(c, n)`: the low 32 bits of SipHash-2-4 under key `c` of the 4-tuple and `n`.
    /// `flow` is the SYN's (source = the client).
    fn hash(&self, c: usize, flow: &Flow, n: u32) -> u32 {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&flow.src_addr.octets());
        b[4..8].copy_from_slice(&flow.dst_addr.octets());
        b[8..10].copy_from_slice(&flow.src_port.to_be_bytes());
        b[10..12].copy_from_slice(&flow.dst_port.to_be_bytes());
        b[12..16].copy_from_slice(&n.to_be_bytes());
        self.keys[c].hash(&b) as u32
    }

    /// The cookie for a SYN on `flow` (source = the client) with sequence number
    /// `client_isn`, carrying `mss_index` (taken modulo the table size), made in
    /// counter period `count`.
    pub fn encode(&self, flow: &Flow, client_isn: u32, mss_index: u8, count: u32) -> u32 {
        let data = u32::from(mss_index) % MSS_TABLE.len() as u32;
        self.hash(0, flow, 0)
            .wrapping_add(client_isn)
            .wrapping_add(count << COOKIE_BITS)
            .wrapping_add(self.hash(1, flow, count).wrapping_add(data) & COOKIE_MASK)
    }

    /// Checks `cookie` (the ACK's acknowledgement number less one) for `flow` and the
    /// client ISN `client_isn` (the ACK's sequence number less one) in counter period
    /// `count`; returns the MSS index it carries.
    pub fn decode(
        &self,
        flow: &Flow,
        client_isn: u32,
        cookie: u32,
        count: u32,
    ) -> Result<u8, CookieError> {
        let c = cookie
            .wrapping_sub(self.hash(0, flow, 0))
            .wrapping_sub(client_isn);
        let diff = count.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if diff >= MAX_AGE {
            return Err(CookieError::TooOld);
        }
        let data = c.wrapping_sub(self.hash(1, flow, count.wrapping_sub(diff))) & COOKIE_MASK;
        if data as usize >= MSS_TABLE.len() {
            return Err(CookieError::BadHash);
        }
        Ok(data as u8)
    }

    /// The cookie answering a SYN with `client_isn` and the peer MSS `peer_mss` at
    /// `now`, and the MSS it stands for (the table entry `peer_mss` rounds down to).
    pub fn make(&self, flow: &Flow, client_isn: u32, peer_mss: u16, now: Instant) -> (u32, u16) {
        let i = mss_index(peer_mss);
        (
            self.encode(flow, client_isn, i, counter(now)),
            MSS_TABLE[usize::from(i)],
        )
    }

    /// Checks the cookie an ACK returns at `now` (`ack` and `seq` are the ACK's own
    /// numbers); returns the peer MSS it carries.
    pub fn check(&self, flow: &Flow, seq: u32, ack: u32, now: Instant) -> Result<u16, CookieError> {
        let i = self.decode(flow, seq.wrapping_sub(1), ack.wrapping_sub(1), counter(now))?;
        Ok(MSS_TABLE[usize::from(i)])
    }
}

/// The SYN's options a cookie SYN-ACK keeps in its TSval (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieOptions {
    /// The client's window-scale shift, if its SYN offered scaling.
    pub wscale: Option<u8>,
    /// The SYN carried SACK-permitted (and we accept SACK).
    pub sack: bool,
    /// ECN was negotiated (never set here: ECN is not implemented).
    pub ecn: bool,
}

impl CookieOptions {
    /// The option bits (the low [`TS_BITS`] of the TSval).
    pub fn bits(self) -> u32 {
        let mut o = match self.wscale {
            Some(ws) => u32::from(ws.min(14)),
            None => TS_OPT_WSCALE_MASK,
        };
        if self.sack {
            o |= TS_OPT_SACK;
        }
        if self.ecn {
            o |= TS_OPT_ECN;
        }
        o
    }

    /// The SYN-ACK's TSval for a timestamp clock reading `ts_now`: the clock with its
    /// low bits replaced by the options, never ahead of the clock.
    pub fn tsval(self, ts_now: u32) -> u32 {
        let ts = (ts_now >> TS_BITS << TS_BITS) | self.bits();
        if ts > ts_now {
            ts.wrapping_sub(1 << TS_BITS)
        } else {
            ts
        }
    }

    /// The options echoed in the TSecr of the ACK that returns a cookie.
    pub fn from_tsecr(tsecr: u32) -> CookieOptions {
        let ws = tsecr & TS_OPT_WSCALE_MASK;
        CookieOptions {
            wscale: (ws != TS_OPT_WSCALE_MASK).then(|| ws.min(14) as u8),
            sack: tsecr & TS_OPT_SACK != 0,
            ecn: tsecr & TS_OPT_ECN != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    fn keys() -> [[u8; 16]; 2] {
        let mut k = [[0u8; 16]; 2];
        for (i, a) in k[0].iter_mut().enumerate() {
            *a = i as u8;
        }
        for (i, b) in k[1].iter_mut().enumerate() {
            *b = 0x10 + i as u8;
        }
        k
    }

    fn flow() -> Flow {
        Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 40000,
            dst_addr: Ipv4Address::new(198, 18, 0, 100),
            dst_port: 80,
        }
    }

    #[test]
    fn siphash_is_the_reference_function() {
        // SipHash-2-4 reference vector (Aumasson and Bernstein, Appendix A; Linux
        // lib/test_siphash.c): key 00..0f, message 00..0f.
        let c = SynCookies::new(keys());
        let msg: Vec<u8> = (0u8..16).collect();
        assert_eq!(c.keys[0].hash(&msg), 0x3f2a_cc7f_57c2_9bdb);
        // And the hash input layout: 198.18.0.1, 198.18.0.100, 40000, 80, n = 0.
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&[198, 18, 0, 1, 198, 18, 0, 100, 0x9c, 0x40, 0x00, 0x50]);
        assert_eq!(c.hash(0, &flow(), 0), c.keys[0].hash(&b) as u32);
        b[12..].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(c.hash(1, &flow(), 7), c.keys[1].hash(&b) as u32);
    }

    /// Values computed independently (a Python SipHash-2-4 and the formula of the
    /// module doc) for the keys 00..0f / 10..1f.
    #[test]
    fn cookie_vectors() {
        let c = SynCookies::new(keys());
        let f = flow();
        assert_eq!(c.hash(0, &f, 0), H0);
        assert_eq!(c.hash(1, &f, 5), H1_5);
        assert_eq!(c.encode(&f, 0x0102_0304, 3, 5), COOKIE_3_5);
        assert_eq!(c.encode(&f, 0xffff_fff0, 0, 0x1ff), COOKIE_0_1FF);
        assert_eq!(c.decode(&f, 0x0102_0304, COOKIE_3_5, 5), Ok(3));
        assert_eq!(c.decode(&f, 0x0102_0304, COOKIE_3_5, 6), Ok(3));
        assert_eq!(c.decode(&f, 0xffff_fff0, COOKIE_0_1FF, 0x200), Ok(0));
    }

    const H0: u32 = 0xda00_30a9;
    const H1_5: u32 = 0xbb71_6a02;
    const COOKIE_3_5: u32 = 0xe073_9db2;
    const COOKIE_0_1FF: u32 = 0xd903_3ae4;

    #[test]
    fn every_mss_round_trips() {
        let c = SynCookies::new(keys());
        for (mss, want) in [
            (100u16, 536u16),
            (536, 536),
            (1299, 536),
            (1300, 1300),
            (1448, 1440),
            (1460, 1460),
            (9000, 1460),
        ] {
            let now = Instant::from_secs(1000);
            let (cookie, used) = c.make(&flow(), 77, mss, now);
            assert_eq!(used, want);
            assert_eq!(c.check(&flow(), 78, cookie.wrapping_add(1), now), Ok(want));
        }
    }

    #[test]
    fn refused_cookies() {
        let c = SynCookies::new(keys());
        let f = flow();
        let isn = 0x1234_5678;
        let count = 1000;
        let cookie = c.encode(&f, isn, 2, count);
        // Previous period: accepted; two periods on: too old (and from the future).
        assert_eq!(c.decode(&f, isn, cookie, count + 1), Ok(2));
        assert_eq!(
            c.decode(&f, isn, cookie, count + 2),
            Err(CookieError::TooOld)
        );
        assert_eq!(
            c.decode(&f, isn, cookie, count - 1),
            Err(CookieError::TooOld)
        );
        // Wrong 4-tuple, wrong client ISN, another secret: refused.
        for other in [
            Flow {
                src_port: 40001,
                ..f
            },
            Flow {
                src_addr: Ipv4Address::new(198, 18, 0, 2),
                ..f
            },
            Flow { dst_port: 81, ..f },
        ] {
            assert!(c.decode(&other, isn, cookie, count).is_err(), "{other:?}");
        }
        assert!(c
            .decode(&f, isn.wrapping_add(0x1000), cookie, count)
            .is_err());
        let mut k = keys();
        k[1][0] ^= 1;
        assert!(SynCookies::new(k).decode(&f, isn, cookie, count).is_err());
        // Tampered: every single-bit flip above the MSS index is refused; the two low
        // bits can only name another MSS of the table (as in Linux).
        for bit in 2..32 {
            assert!(
                c.decode(&f, isn, cookie ^ (1 << bit), count).is_err(),
                "bit {bit}"
            );
        }
        for bit in 0..2 {
            assert_ne!(c.decode(&f, isn, cookie ^ (1 << bit), count), Ok(2));
        }
        // Forged: of many guesses, almost none pass (4 in 2^24 per counter).
        let passed = (0..100_000u32)
            .filter(|g| {
                c.decode(&f, isn, g.wrapping_mul(0x9E37_79B9), count)
                    .is_ok()
            })
            .count();
        assert_eq!(passed, 0);
    }

    #[test]
    fn counter_ticks_every_64_s() {
        assert_eq!(counter(Instant::from_secs(0)), 0);
        assert_eq!(counter(Instant::from_millis(63_999)), 0);
        assert_eq!(counter(Instant::from_secs(64)), 1);
        assert_eq!(counter(Instant::from_secs(640)), 10);
    }

    #[test]
    fn options_in_the_timestamp() {
        let o = CookieOptions {
            wscale: Some(7),
            sack: true,
            ecn: false,
        };
        assert_eq!(o.bits(), 0b01_0111);
        // Low 6 bits replaced, never ahead of the clock.
        assert_eq!(o.tsval(0x1000_0040), 0x1000_0057 - 0x40);
        assert_eq!(o.tsval(0x1000_0057), 0x1000_0057);
        assert_eq!(o.tsval(0x1000_007f), 0x1000_0057);
        assert_eq!(CookieOptions::from_tsecr(o.tsval(0xdead_beef)), o);
        let none = CookieOptions::default();
        assert_eq!(none.bits(), 0x0f);
        assert_eq!(CookieOptions::from_tsecr(0xffff_ff0f), none);
        assert_eq!(
            CookieOptions::from_tsecr(0x30),
            CookieOptions {
                wscale: Some(0),
                sack: true,
                ecn: true
            }
        );
    }
}
