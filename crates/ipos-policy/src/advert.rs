//! Body of the server-state advertisement, an ipOS extension frame.
//!
//! Each node periodically tells the farm its load, the TCP ports it listens
//! on and what its applications need; receivers fold it into their
//! [`FarmView`](crate::FarmView) with [`apply_advert`](crate::apply_advert).
//! The Ethernet and ipOS headers around this body (and its type value) belong
//! to the wire crate; this module defines only the body bytes.
//!
//! # Layout (all integers big-endian)
//!
//! | offset | bytes | field | rule on parse |
//! |---|---|---|---|
//! | 0 | 1 | version | must be [`VERSION`] (1) |
//! | 1 | 1 | listening count `L` | at most [`MAX_ENTRIES`] (16) |
//! | 2 | 1 | application count `A` | at most [`MAX_ENTRIES`] (16) |
//! | 3 | 1 | reserved | sent as 0, ignored |
//! | 4 | 4 | node IP (the advertising server) | not 0.0.0.0, broadcast or multicast |
//! | 8 | 4 | sequence number | any; newer wins (serial-number order) |
//! | 12 | 4 | established TCP connections | any |
//! | 16 | 2 | CPU utilisation, permille | at most 1000 |
//! | 18 | 2 | reserved | sent as 0, ignored |
//! | 20 | 4 | available memory, MiB | any |
//! | 24 | 4 | available bandwidth, Mbit/s | any |
//! | 28 | 6 x `L` | listening sockets: port (2), process ID (4) | — |
//! | 28 + 6`L` | 10 x `A` | applications: process ID (4), memory required MiB (4), CPU permille (2) | CPU at most 1000 |
//!
//! The body is `28 + 6L + 10A` bytes (28 to 284). Bytes after it are ignored,
//! because a short frame arrives padded to the Ethernet minimum.
//!
//! # Promises
//!
//! [`AdvertRepr::parse`] never panics and never allocates, whatever the
//! input: the lists live in fixed arrays of [`MAX_ENTRIES`] with a count, and
//! a count that needs more bytes than are present is an error
//! ([`AdvertError::Truncated`]). [`AdvertRepr::emit`] writes exactly
//! [`AdvertRepr::buffer_len`] bytes, and what it writes parses back to an
//! equal value.

use core::fmt;

use crate::Ipv4Address;

/// The only body version this code speaks.
pub const VERSION: u8 = 1;
/// Most listening sockets, and most applications, one advertisement carries.
pub const MAX_ENTRIES: usize = 16;
/// Length of the fixed part, before the lists.
pub const FIXED_LEN: usize = 28;
/// Length of one listening-socket entry.
pub const LISTEN_ENTRY_LEN: usize = 6;
/// Length of one application entry.
pub const APP_ENTRY_LEN: usize = 10;
/// Longest body: both lists full.
pub const MAX_LEN: usize = FIXED_LEN + MAX_ENTRIES * (LISTEN_ENTRY_LEN + APP_ENTRY_LEN);

mod field {
    pub const VERSION: usize = 0;
    pub const LISTEN_COUNT: usize = 1;
    pub const APP_COUNT: usize = 2;
    pub const NODE_IP: usize = 4;
    pub const SEQUENCE: usize = 8;
    pub const ESTABLISHED: usize = 12;
    pub const CPU: usize = 16;
    pub const MEM: usize = 20;
    pub const BW: usize = 24;
}

/// Why an advertisement body was rejected (or could not be emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertError {
    /// Fewer bytes than the fixed part plus the entries the counts announce.
    Truncated,
    /// A version byte other than [`VERSION`].
    BadVersion(u8),
    /// A listening or application count above [`MAX_ENTRIES`].
    BadCount,
    /// A CPU figure above 1000 permille.
    BadValue,
    /// The node IP is unspecified, broadcast or multicast.
    BadNodeIp,
    /// `emit` was given a buffer shorter than [`AdvertRepr::buffer_len`].
    BufferTooSmall,
    /// `push_*` on a list that already holds [`MAX_ENTRIES`] entries.
    TooManyEntries,
}

impl fmt::Display for AdvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdvertError::Truncated => f.write_str("advertisement truncated"),
            AdvertError::BadVersion(v) => write!(f, "unknown advertisement version {v}"),
            AdvertError::BadCount => write!(f, "advertisement list count above {MAX_ENTRIES}"),
            AdvertError::BadValue => f.write_str("advertised CPU utilisation above 1000 permille"),
            AdvertError::BadNodeIp => f.write_str("advertised node IP is not a unicast address"),
            AdvertError::BufferTooSmall => f.write_str("buffer too small for advertisement"),
            AdvertError::TooManyEntries => {
                write!(f, "advertisement list already holds {MAX_ENTRIES} entries")
            }
        }
    }
}

impl std::error::Error for AdvertError {}

/// One advertised listening socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenEntry {
    /// TCP port.
    pub port: u16,
    /// Process ID of the application listening on it.
    pub pid: u32,
}

/// One advertised application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppEntry {
    /// Process ID.
    pub pid: u32,
    /// Memory the application requires, MiB.
    pub mem_mib: u32,
    /// The application's CPU utilisation, permille.
    pub cpu_permille: u16,
}

/// A parsed (or to-be-emitted) server-state advertisement body.
///
/// The lists hold at most [`MAX_ENTRIES`] entries each, in fixed arrays, so a
/// value never owns heap memory.
#[derive(Clone, Copy)]
pub struct AdvertRepr {
    /// The advertising server.
    pub node_ip: Ipv4Address,
    /// Sequence number, incremented by the sender for each advertisement.
    pub sequence: u32,
    /// TCP connections in the established state.
    pub established: u32,
    /// CPU utilisation, permille (at most 1000).
    pub cpu_permille: u16,
    /// Available memory, MiB.
    pub mem_avail_mib: u32,
    /// Available bandwidth, Mbit/s.
    pub bw_avail_mbps: u32,
    listening: [ListenEntry; MAX_ENTRIES],
    listening_len: u8,
    apps: [AppEntry; MAX_ENTRIES],
    apps_len: u8,
}

impl AdvertRepr {
    /// An advertisement from `node_ip` with sequence `sequence`, zero load
    /// figures and empty lists.
    pub fn new(node_ip: Ipv4Address, sequence: u32) -> Self {
        AdvertRepr {
            node_ip,
            sequence,
            established: 0,
            cpu_permille: 0,
            mem_avail_mib: 0,
            bw_avail_mbps: 0,
            listening: [ListenEntry::default(); MAX_ENTRIES],
            listening_len: 0,
            apps: [AppEntry::default(); MAX_ENTRIES],
            apps_len: 0,
        }
    }

    /// The advertised listening sockets.
    pub fn listening(&self) -> &[ListenEntry] {
        &self.listening[..usize::from(self.listening_len)]
    }

    /// The advertised applications.
    pub fn apps(&self) -> &[AppEntry] {
        &self.apps[..usize::from(self.apps_len)]
    }

    /// Append a listening socket; fails when the list is full.
    pub fn push_listening(&mut self, entry: ListenEntry) -> Result<(), AdvertError> {
        let slot = self
            .listening
            .get_mut(usize::from(self.listening_len))
            .ok_or(AdvertError::TooManyEntries)?;
        *slot = entry;
        self.listening_len += 1;
        Ok(())
    }

    /// Append an application; fails when the list is full.
    pub fn push_app(&mut self, entry: AppEntry) -> Result<(), AdvertError> {
        let slot = self
            .apps
            .get_mut(usize::from(self.apps_len))
            .ok_or(AdvertError::TooManyEntries)?;
        *slot = entry;
        self.apps_len += 1;
        Ok(())
    }

    /// Bytes [`emit`](Self::emit) writes: `28 + 6 * listening + 10 * apps`.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN
            + LISTEN_ENTRY_LEN * usize::from(self.listening_len)
            + APP_ENTRY_LEN * usize::from(self.apps_len)
    }

    /// Parse a body. Trailing bytes after the announced entries are ignored
    /// (Ethernet padding). Never panics, never allocates.
    pub fn parse(buf: &[u8]) -> Result<AdvertRepr, AdvertError> {
        if buf.len() < FIXED_LEN {
            return Err(AdvertError::Truncated);
        }
        let version = buf[field::VERSION];
        if version != VERSION {
            return Err(AdvertError::BadVersion(version));
        }
        let n_listen = usize::from(buf[field::LISTEN_COUNT]);
        let n_apps = usize::from(buf[field::APP_COUNT]);
        if n_listen > MAX_ENTRIES || n_apps > MAX_ENTRIES {
            return Err(AdvertError::BadCount);
        }
        let apps_at = FIXED_LEN + LISTEN_ENTRY_LEN * n_listen;
        let end = apps_at + APP_ENTRY_LEN * n_apps;
        if buf.len() < end {
            return Err(AdvertError::Truncated);
        }

        let node_ip = Ipv4Address::from(be_u32(buf, field::NODE_IP));
        if !is_unicast(node_ip) {
            return Err(AdvertError::BadNodeIp);
        }
        let cpu_permille = be_u16(buf, field::CPU);
        if cpu_permille > 1000 {
            return Err(AdvertError::BadValue);
        }
        let mut repr = AdvertRepr::new(node_ip, be_u32(buf, field::SEQUENCE));
        repr.established = be_u32(buf, field::ESTABLISHED);
        repr.cpu_permille = cpu_permille;
        repr.mem_avail_mib = be_u32(buf, field::MEM);
        repr.bw_avail_mbps = be_u32(buf, field::BW);

        for (i, slot) in repr.listening.iter_mut().take(n_listen).enumerate() {
            let at = FIXED_LEN + LISTEN_ENTRY_LEN * i;
            *slot = ListenEntry {
                port: be_u16(buf, at),
                pid: be_u32(buf, at + 2),
            };
        }
        repr.listening_len = n_listen as u8; // <= 16, checked above
        for (i, slot) in repr.apps.iter_mut().take(n_apps).enumerate() {
            let at = apps_at + APP_ENTRY_LEN * i;
            let cpu = be_u16(buf, at + 8);
            if cpu > 1000 {
                return Err(AdvertError::BadValue);
            }
            *slot = AppEntry {
                pid: be_u32(buf, at),
                mem_mib: be_u32(buf, at + 4),
                cpu_permille: cpu,
            };
        }
        repr.apps_len = n_apps as u8; // <= 16, checked above
        Ok(repr)
    }

    /// Write the body into the front of `buf`; returns the bytes written
    /// ([`buffer_len`](Self::buffer_len)). Refuses values that
    /// [`parse`](Self::parse) would reject, so what is sent always parses.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, AdvertError> {
        if !is_unicast(self.node_ip) {
            return Err(AdvertError::BadNodeIp);
        }
        if self.cpu_permille > 1000 || self.apps().iter().any(|a| a.cpu_permille > 1000) {
            return Err(AdvertError::BadValue);
        }
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(AdvertError::BufferTooSmall)?;
        out[field::VERSION] = VERSION;
        out[field::LISTEN_COUNT] = self.listening_len;
        out[field::APP_COUNT] = self.apps_len;
        out[3] = 0;
        out[field::NODE_IP..field::NODE_IP + 4].copy_from_slice(&self.node_ip.octets());
        put_u32(out, field::SEQUENCE, self.sequence);
        put_u32(out, field::ESTABLISHED, self.established);
        put_u16(out, field::CPU, self.cpu_permille);
        put_u16(out, field::CPU + 2, 0);
        put_u32(out, field::MEM, self.mem_avail_mib);
        put_u32(out, field::BW, self.bw_avail_mbps);
        let mut at = FIXED_LEN;
        for e in self.listening() {
            put_u16(out, at, e.port);
            put_u32(out, at + 2, e.pid);
            at += LISTEN_ENTRY_LEN;
        }
        for a in self.apps() {
            put_u32(out, at, a.pid);
            put_u32(out, at + 4, a.mem_mib);
            put_u16(out, at + 8, a.cpu_permille);
            at += APP_ENTRY_LEN;
        }
        Ok(len)
    }
}

impl PartialEq for AdvertRepr {
    /// Equal when every field and the *used* part of each list are equal
    /// (unused array slots do not count).
    fn eq(&self, other: &Self) -> bool {
        self.node_ip == other.node_ip
            && self.sequence == other.sequence
            && self.established == other.established
            && self.cpu_permille == other.cpu_permille
            && self.mem_avail_mib == other.mem_avail_mib
            && self.bw_avail_mbps == other.bw_avail_mbps
            && self.listening() == other.listening()
            && self.apps() == other.apps()
    }
}

impl Eq for AdvertRepr {}

impl fmt::Debug for AdvertRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdvertRepr")
            .field("node_ip", &self.node_ip)
            .field("sequence", &self.sequence)
            .field("established", &self.established)
            .field("cpu_permille", &self.cpu_permille)
            .field("mem_avail_mib", &self.mem_avail_mib)
            .field("bw_avail_mbps", &self.bw_avail_mbps)
            .field("listening", &self.listening())
            .field("apps", &self.apps())
            .finish()
    }
}

/// Whether `ip` can name a server: not 0.0.0.0, 255.255.255.255 or multicast.
fn is_unicast(ip: Ipv4Address) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

// Callers have checked `at + 2` / `at + 4 <= buf.len()`.
fn be_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[rustfmt::skip]
    static BYTES: [u8; 50] = [
        0x01,                   // version 1
        0x02,                   // 2 listening sockets
        0x01,                   // 1 application
        0x00,                   // reserved
        0xc6, 0x12, 0x00, 0x07, // node IP 198.18.0.7
        0x00, 0x00, 0x01, 0x02, // sequence 258
        0x00, 0x00, 0x00, 0x2a, // established 42
        0x01, 0xf4,             // CPU 500 permille
        0x00, 0x00,             // reserved
        0x00, 0x00, 0x10, 0x00, // memory 4096 MiB
        0x00, 0x00, 0x03, 0xe8, // bandwidth 1000 Mbit/s
        0x00, 0x50,             // listening[0].port 80
        0x00, 0x00, 0x04, 0xd2, // listening[0].pid 1234
        0x01, 0xbb,             // listening[1].port 443
        0x00, 0x00, 0x04, 0xd3, // listening[1].pid 1235
        0x00, 0x00, 0x04, 0xd2, // apps[0].pid 1234
        0x00, 0x00, 0x01, 0x00, // apps[0].mem 256 MiB
        0x00, 0x64,             // apps[0].cpu 100 permille
    ];

    fn repr() -> AdvertRepr {
        let mut r = AdvertRepr::new(Ipv4Address::new(198, 18, 0, 7), 258);
        r.established = 42;
        r.cpu_permille = 500;
        r.mem_avail_mib = 4096;
        r.bw_avail_mbps = 1000;
        r.push_listening(ListenEntry {
            port: 80,
            pid: 1234,
        })
        .unwrap();
        r.push_listening(ListenEntry {
            port: 443,
            pid: 1235,
        })
        .unwrap();
        r.push_app(AppEntry {
            pid: 1234,
            mem_mib: 256,
            cpu_permille: 100,
        })
        .unwrap();
        r
    }

    #[test]
    fn deconstruct() {
        assert_eq!(AdvertRepr::parse(&BYTES), Ok(repr()));
    }

    #[test]
    fn construct() {
        let r = repr();
        assert_eq!(r.buffer_len(), BYTES.len());
        let mut buf = [0xffu8; 64];
        assert_eq!(r.emit(&mut buf), Ok(BYTES.len()));
        assert_eq!(&buf[..BYTES.len()], &BYTES[..]);
        // Nothing past buffer_len is touched.
        assert!(buf[BYTES.len()..].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn ethernet_padding_ignored() {
        let mut padded = BYTES.to_vec();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(AdvertRepr::parse(&padded), Ok(repr()));
    }

    #[test]
    fn truncated() {
        for len in 0..BYTES.len() {
            assert_eq!(
                AdvertRepr::parse(&BYTES[..len]),
                Err(AdvertError::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn count_beyond_bytes_present() {
        let mut b = BYTES;
        b[2] = 2; // claims a second application that is not there
        assert_eq!(AdvertRepr::parse(&b), Err(AdvertError::Truncated));
        let mut b = BYTES;
        b[1] = 3; // a third listening socket would overlap the app entry and run past the end
        assert_eq!(AdvertRepr::parse(&b), Err(AdvertError::Truncated));
    }

    #[test]
    fn bad_count() {
        let mut big = [0u8; MAX_LEN + 64];
        big[..BYTES.len()].copy_from_slice(&BYTES);
        big[1] = 17;
        assert_eq!(AdvertRepr::parse(&big), Err(AdvertError::BadCount));
        big[1] = 0;
        big[2] = 255;
        assert_eq!(AdvertRepr::parse(&big), Err(AdvertError::BadCount));
    }

    #[test]
    fn bad_version() {
        for v in [0u8, 2, 0xff] {
            let mut b = BYTES;
            b[0] = v;
            assert_eq!(AdvertRepr::parse(&b), Err(AdvertError::BadVersion(v)));
        }
    }

    #[test]
    fn bad_values() {
        let mut b = BYTES;
        b[16..18].copy_from_slice(&1001u16.to_be_bytes());
        assert_eq!(AdvertRepr::parse(&b), Err(AdvertError::BadValue));
        let mut b = BYTES;
        b[48..50].copy_from_slice(&1001u16.to_be_bytes());
        assert_eq!(AdvertRepr::parse(&b), Err(AdvertError::BadValue));
        for ip in [[0, 0, 0, 0], [255, 255, 255, 255], [224, 0, 0, 1]] {
            let mut b = BYTES;
            b[4..8].copy_from_slice(&ip);
            assert_eq!(AdvertRepr::parse(&b), Err(AdvertError::BadNodeIp));
        }
    }

    #[test]
    fn emit_refusals() {
        let r = repr();
        let mut small = [0u8; 49];
        assert_eq!(r.emit(&mut small), Err(AdvertError::BufferTooSmall));
        let mut bad = r;
        bad.cpu_permille = 1001;
        assert_eq!(bad.emit(&mut [0; 64]), Err(AdvertError::BadValue));
        let mut bad = r;
        bad.node_ip = Ipv4Address::UNSPECIFIED;
        assert_eq!(bad.emit(&mut [0; 64]), Err(AdvertError::BadNodeIp));
    }

    #[test]
    fn lists_are_bounded() {
        let mut r = AdvertRepr::new(Ipv4Address::new(198, 18, 0, 1), 0);
        for i in 0..MAX_ENTRIES as u16 {
            r.push_listening(ListenEntry { port: i, pid: 1 }).unwrap();
            r.push_app(AppEntry::default()).unwrap();
        }
        assert_eq!(
            r.push_listening(ListenEntry::default()),
            Err(AdvertError::TooManyEntries)
        );
        assert_eq!(
            r.push_app(AppEntry::default()),
            Err(AdvertError::TooManyEntries)
        );
        assert_eq!(r.buffer_len(), MAX_LEN);
        let mut buf = [0u8; MAX_LEN];
        assert_eq!(r.emit(&mut buf), Ok(MAX_LEN));
        assert_eq!(AdvertRepr::parse(&buf), Ok(r));
    }

    fn arb_repr() -> impl Strategy<Value = AdvertRepr> {
        let ip = any::<u32>()
            .prop_map(Ipv4Address::from)
            .prop_filter("unicast", |ip| is_unicast(*ip));
        let listen = proptest::collection::vec(
            (any::<u16>(), any::<u32>()).prop_map(|(port, pid)| ListenEntry { port, pid }),
            0..=MAX_ENTRIES,
        );
        let apps = proptest::collection::vec(
            (any::<u32>(), any::<u32>(), 0u16..=1000).prop_map(|(pid, mem_mib, cpu_permille)| {
                AppEntry {
                    pid,
                    mem_mib,
                    cpu_permille,
                }
            }),
            0..=MAX_ENTRIES,
        );
        (
            ip,
            any::<u32>(),
            any::<u32>(),
            0u16..=1000,
            any::<u32>(),
            any::<u32>(),
            listen,
            apps,
        )
            .prop_map(|(ip, seq, est, cpu, mem, bw, listen, apps)| {
                let mut r = AdvertRepr::new(ip, seq);
                r.established = est;
                r.cpu_permille = cpu;
                r.mem_avail_mib = mem;
                r.bw_avail_mbps = bw;
                for e in listen {
                    r.push_listening(e).unwrap();
                }
                for a in apps {
                    r.push_app(a).unwrap();
                }
                r
            })
    }

    proptest! {
        #[test]
        fn round_trip(r in arb_repr(), pad in 0usize..8) {
            let mut buf = vec![0u8; r.buffer_len() + pad];
            prop_assert_eq!(r.emit(&mut buf), Ok(r.buffer_len()));
            prop_assert_eq!(AdvertRepr::parse(&buf), Ok(r));
            // Every strict prefix of the body is rejected as truncated.
            let cut = r.buffer_len().saturating_sub(1 + pad % 4);
            prop_assert_eq!(AdvertRepr::parse(&buf[..cut]), Err(AdvertError::Truncated));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(r) = AdvertRepr::parse(&bytes) {
                // Whatever parses re-emits to the same prefix (reserved bytes zeroed).
                let mut out = vec![0u8; r.buffer_len()];
                prop_assert_eq!(r.emit(&mut out), Ok(r.buffer_len()));
                prop_assert_eq!(AdvertRepr::parse(&out), Ok(r));
                prop_assert!(r.buffer_len() <= bytes.len());
            }
        }

        #[test]
        fn never_panics_with_valid_header(
            l in 0u8..=20, a in 0u8..=20,
            rest in proptest::collection::vec(any::<u8>(), 0..320),
        ) {
            // Steer past the version check so the count and length paths run.
            let mut bytes = vec![VERSION, l, a, 0, 10, 0, 0, 1];
            bytes.extend_from_slice(&rest);
            match AdvertRepr::parse(&bytes) {
                Ok(r) => {
                    prop_assert_eq!(r.listening().len(), usize::from(l));
                    prop_assert_eq!(r.apps().len(), usize::from(a));
                }
                Err(e) => prop_assert!(matches!(
                    e,
                    AdvertError::Truncated | AdvertError::BadCount | AdvertError::BadValue
                )),
            }
        }
    }
}
