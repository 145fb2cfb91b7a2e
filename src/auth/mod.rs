//! Farm authentication: every ipOS frame a node sends carries the trailer of
//! [`ipos_wire::trailer`] with an AES-256-GCM tag (RustCrypto's `aes-gcm`,
//! which uses AES-NI and carry-less multiplication when the CPU has them),
//! and every ipOS frame it receives is checked against it before anything
//! else of the frame is parsed.
//!
//! * **Keys**: see [`key`]: one farm key in a file, one derived key per
//!   sender and epoch (HKDF-SHA256 over its MAC and its boot time).
//! * **Nonces**: the sequence number from 1 (with the mode and key id), so
//!   a key never sees a nonce twice.
//! * **Lanes**: a node that polls several lcores seals on each of them
//!   without sharing a counter: the top 8 bits of a sequence number name the
//!   sending lane ([`LANE_SHIFT`]), the 56 below count from 1 on that lane. A
//!   one-lane node sends lane 0 only, the format of a node without lanes.
//! * **Replay**: per peer, the latest epoch and a [`replay::ReplayWindow`]
//!   per sending lane (made at the lane's first frame, at most [`MAX_LANES`])
//!   over its sequence numbers. A higher epoch is the peer's restart: its key
//!   is derived (once per epoch seen: a frame claiming a new one costs an
//!   HKDF and an AES key expansion, a few µs), the frame is taken once its
//!   tag verifies, and the window starts afresh.
//! * **Modes**: [`Mode::Authenticated`] (the tag covers the whole frame in
//!   clear; the associated data is the frame up to the tag) or
//!   [`Mode::Encrypted`] (everything after the ipOS header is encrypted; the
//!   Ethernet and ipOS headers are the associated data, and the trailer head
//!   is bound through the nonce). A farm uses one mode on every node.
//!
//! Sealing and opening work in place on the frame's bytes: no allocation.

pub mod key;
pub mod replay;

pub use ipos_wire::trailer::Mode;
pub use key::{FarmKey, KeyError};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use ipos_wire::trailer::{split_sealed, TrailerRepr, TAG_LEN, TRAILER_HEAD_LEN, TRAILER_LEN};
use ipos_wire::DATA_HEADROOM;
use replay::{Replay, ReplayWindow};
use smoltcp::wire::EthernetAddress;

/// The key id of the one key a farm file names.
const KEY_ID: u8 = 0;

/// Where the sending lane sits in a sequence number (its top 8 bits).
pub const LANE_SHIFT: u32 = 56;
/// Lanes (lcores) a node may seal on; a frame naming a higher lane is refused.
pub const MAX_LANES: usize = 64;
const COUNT_MASK: u64 = (1 << LANE_SHIFT) - 1;

/// A farm's authentication settings: its key and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The farm key.
    pub key: FarmKey,
    /// What the tag protects.
    pub mode: Mode,
}

/// Why a received frame failed the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Too short to hold the ipOS headers and a trailer.
    NoTrailer,
    /// A mode this farm does not use, or an unknown mode byte.
    WrongMode,
    /// A key id this node does not hold.
    UnknownKey,
    /// The tag does not verify: forged, corrupted, or sealed with another key.
    BadTag,
    /// A sequence number seen already, or older than the replay window (or
    /// one that names no lane a node may have).
    Replayed,
    /// An epoch older than the peer's latest: a frame from before its restart.
    OldEpoch,
}

/// A frame that passed the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The frame's length without the trailer.
    pub len: usize,
    /// The first frame of a new epoch of this peer: it restarted.
    pub restarted: bool,
    /// The epoch of the frame.
    pub epoch: u64,
}

/// What a node knows of one peer's frames.
struct PeerState {
    mac: EthernetAddress,
    /// The key of `epoch` (none before the peer's first frame).
    opener: Option<Aes256Gcm>,
    epoch: u64,
    /// One window per sending lane, indexed by lane.
    windows: Vec<ReplayWindow>,
}

/// A node's sealing key and sequence, and its peers' opening state.
pub struct FarmAuth {
    mode: Mode,
    key: FarmKey,
    epoch: u64,
    next_seq: u64,
    sealer: Aes256Gcm,
    peers: Vec<PeerState>,
}

impl core::fmt::Debug for FarmAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FarmAuth")
            .field("mode", &self.mode)
            .field("epoch", &self.epoch)
            .field("next_seq", &self.next_seq)
            .field("peers", &self.peers.len())
            .finish()
    }
}

impl FarmAuth {
    /// The state of the node with MAC `me`, in a farm whose nodes (in
    /// [`crate::node::PeerId`] order) have the MACs `peers`; its frames carry
    /// `epoch` (its boot time in µs since the Unix epoch; see [`boot_epoch`]).
    pub fn new(
        config: &AuthConfig,
        me: EthernetAddress,
        peers: impl IntoIterator<Item = EthernetAddress>,
        epoch: u64,
    ) -> FarmAuth {
        FarmAuth {
            mode: config.mode,
            key: config.key.clone(),
            epoch,
            next_seq: 1,
            sealer: Aes256Gcm::new(&config.key.sender_key(me, epoch).into()),
            peers: peers
                .into_iter()
                .map(|mac| PeerState {
                    mac,
                    opener: None,
                    epoch: 0,
                    windows: Vec::new(),
                })
                .collect(),
        }
    }

    /// Seals from now on as lane `lane` of its node (below [`MAX_LANES`]):
    /// sequence numbers `lane << 56 | 1, 2, ...`. Each lane of a node holds
    /// its own `FarmAuth`, set once before its first frame.
    pub fn set_lane(&mut self, lane: usize) {
        assert!(lane < MAX_LANES, "lane {lane} of at most {MAX_LANES}");
        self.next_seq = ((lane as u64) << LANE_SHIFT) | 1;
    }

    /// The sequence number of a sealed frame, read from its trailer without
    /// checking anything (to choose the lane that will open it).
    pub fn peek_seq(frame: &[u8]) -> Option<u64> {
        let n = frame.len();
        if n < DATA_HEADROOM + TRAILER_LEN {
            return None;
        }
        let head = &frame[n - TRAILER_LEN..n - TRAILER_LEN + TRAILER_HEAD_LEN];
        TrailerRepr::parse(head).ok().map(|t| t.seq)
    }

    /// The mode of this farm.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Seals `frame` in place: its last [`TRAILER_LEN`] bytes are room for
    /// the trailer, written here; before them, a whole ipOS frame (Ethernet
    /// header first). False when `frame` is too short to be one.
    pub fn seal(&mut self, frame: &mut [u8]) -> bool {
        let n = frame.len();
        if n < DATA_HEADROOM + TRAILER_LEN {
            return false;
        }
        let t = TrailerRepr {
            mode: self.mode,
            key_id: KEY_ID,
            epoch: self.epoch,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let body_end = n - TRAILER_LEN;
        if t.emit(&mut frame[body_end..]).is_err() {
            return false;
        }
        let nonce = Nonce::from(t.nonce());
        let tag = match self.mode {
            Mode::Authenticated => {
                self.sealer
                    .encrypt_in_place_detached(&nonce, &frame[..n - TAG_LEN], &mut [])
            }
            Mode::Encrypted => {
                let (aad, rest) = frame.split_at_mut(DATA_HEADROOM);
                self.sealer.encrypt_in_place_detached(
                    &nonce,
                    aad,
                    &mut rest[..body_end - DATA_HEADROOM],
                )
            }
        };
        match tag {
            Ok(tag) => {
                frame[n - TAG_LEN..].copy_from_slice(&tag);
                true
            }
            Err(_) => false,
        }
    }

    /// Checks (and in [`Mode::Encrypted`] decrypts, in place) a frame from
    /// the peer at index `peer`; the replay state moves only when it passes.
    pub fn open(&mut self, peer: usize, frame: &mut [u8]) -> Result<Opened, AuthError> {
        let n = frame.len();
        let tag = {
            let (_, tag) = split_sealed(frame).map_err(|_| AuthError::NoTrailer)?;
            Tag::clone_from_slice(tag)
        };
        if n < DATA_HEADROOM + TRAILER_LEN {
            return Err(AuthError::NoTrailer);
        }
        let body_end = n - TRAILER_LEN;
        let head = &frame[body_end..body_end + TRAILER_HEAD_LEN];
        let t = TrailerRepr::parse(head).map_err(|_| AuthError::WrongMode)?;
        if t.mode != self.mode {
            return Err(AuthError::WrongMode);
        }
        if t.key_id != KEY_ID {
            return Err(AuthError::UnknownKey);
        }
        let Some(p) = self.peers.get_mut(peer) else {
            return Err(AuthError::BadTag);
        };
        let lane = (t.seq >> LANE_SHIFT) as usize;
        let count = t.seq & COUNT_MASK;
        if lane >= MAX_LANES || count == 0 {
            return Err(AuthError::Replayed);
        }
        if t.epoch < p.epoch {
            return Err(AuthError::OldEpoch);
        }
        if t.epoch == p.epoch {
            if let Some(w) = p.windows.get(lane) {
                w.check(count).map_err(|r| match r {
                    Replay::Duplicate | Replay::TooOld => AuthError::Replayed,
                })?;
            }
        }
        // The key of the frame's epoch: the one held, or a new one derived
        // for a higher epoch (kept only if the frame verifies).
        let fresh = match (&p.opener, t.epoch == p.epoch) {
            (Some(_), true) => None,
            _ => Some(Aes256Gcm::new(&self.key.sender_key(p.mac, t.epoch).into())),
        };
        let Some(opener) = fresh.as_ref().or(p.opener.as_ref()) else {
            return Err(AuthError::BadTag);
        };
        let nonce = Nonce::from(t.nonce());
        let verified = match self.mode {
            Mode::Authenticated => {
                opener.decrypt_in_place_detached(&nonce, &frame[..n - TAG_LEN], &mut [], &tag)
            }
            Mode::Encrypted => {
                // The reserved bytes are bound by nothing else: they must be zero.
                if frame[body_end + 2..body_end + 4] != [0, 0] {
                    return Err(AuthError::BadTag);
                }
                let (aad, rest) = frame.split_at_mut(DATA_HEADROOM);
                opener.decrypt_in_place_detached(
                    &nonce,
                    aad,
                    &mut rest[..body_end - DATA_HEADROOM],
                    &tag,
                )
            }
        };
        verified.map_err(|_| AuthError::BadTag)?;
        let restarted = fresh.is_some();
        if let Some(key) = fresh {
            p.opener = Some(key);
            p.epoch = t.epoch;
            p.windows.clear();
        }
        if p.windows.len() <= lane {
            // At most MAX_LANES windows per peer, made once per lane.
            p.windows.resize_with(lane + 1, ReplayWindow::default);
        }
        p.windows[lane].accept(count);
        Ok(Opened {
            len: body_end,
            restarted,
            epoch: t.epoch,
        })
    }
}

/// This boot's epoch: the wall clock in µs since the Unix epoch (so a
/// restarted node's epoch is higher than its last one, as long as its clock
/// did not step back across the restart).
pub fn boot_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0a]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x0b]);

    fn pair(mode: Mode) -> (FarmAuth, FarmAuth) {
        let c = AuthConfig {
            key: FarmKey::from_bytes([0x42; 32]),
            mode,
        };
        (
            FarmAuth::new(&c, A, [A, B], 1_000),
            FarmAuth::new(&c, B, [A, B], 2_000),
        )
    }

    /// An ack-sized frame from A to B, with trailer room.
    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; DATA_HEADROOM + 8 + TRAILER_LEN];
        f[0..6].copy_from_slice(B.as_bytes());
        f[6..12].copy_from_slice(A.as_bytes());
        f[12..14].copy_from_slice(&[0x00, 0x07]);
        for (i, b) in f[14..DATA_HEADROOM + 8].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn seal_open_and_refusals() {
        for mode in [Mode::Authenticated, Mode::Encrypted] {
            let (mut a, mut b) = pair(mode);
            let clear = frame();
            let mut f = clear.clone();
            assert!(a.seal(&mut f));
            let body = DATA_HEADROOM..DATA_HEADROOM + 8;
            assert_eq!(&f[..DATA_HEADROOM], &clear[..DATA_HEADROOM]);
            assert_eq!(
                f[body.clone()] == clear[body.clone()],
                mode == Mode::Authenticated
            );
            let sealed = f.clone();
            assert_eq!(
                b.open(0, &mut f),
                Ok(Opened {
                    len: DATA_HEADROOM + 8,
                    restarted: true,
                    epoch: 1_000,
                })
            );
            assert_eq!(&f[..DATA_HEADROOM + 8], &clear[..DATA_HEADROOM + 8]);
            // The same frame again is a replay.
            let mut again = sealed.clone();
            assert_eq!(b.open(0, &mut again), Err(AuthError::Replayed));
            // Every single-byte change is refused (and moves no state).
            for i in 0..sealed.len() {
                let mut g = sealed.clone();
                g[i] ^= 0x01;
                let r = b.open(0, &mut g);
                assert!(r.is_err(), "byte {i} changed, still accepted ({mode:?})");
            }
            // Opened with the wrong peer's key.
            let mut g = frame();
            assert!(a.seal(&mut g));
            assert_eq!(b.open(1, &mut g.clone()), Err(AuthError::BadTag));
            assert_eq!(b.open(0, &mut g).map(|o| o.restarted), Ok(false));
            // Too short to carry a trailer.
            assert_eq!(b.open(0, &mut [0u8; 40]), Err(AuthError::NoTrailer));
        }
    }

    #[test]
    fn lanes_keep_their_own_windows() {
        let c = AuthConfig {
            key: FarmKey::from_bytes([3; 32]),
            mode: Mode::Authenticated,
        };
        let mut b = FarmAuth::new(&c, B, [A, B], 5);
        // Two lanes of node A, one far busier than the other.
        let mut fast = FarmAuth::new(&c, A, [A, B], 100);
        let mut slow = FarmAuth::new(&c, A, [A, B], 100);
        fast.set_lane(0);
        slow.set_lane(3);
        let mut first_slow = frame();
        assert!(slow.seal(&mut first_slow));
        assert_eq!(FarmAuth::peek_seq(&first_slow), Some((3 << LANE_SHIFT) | 1));
        for _ in 0..5000 {
            let mut f = frame();
            assert!(fast.seal(&mut f));
            assert!(b.open(0, &mut f).is_ok());
        }
        // Lane 3's first frame is not "too old" for lane 0's window.
        let replay = first_slow.clone();
        assert!(b.open(0, &mut first_slow).is_ok());
        assert_eq!(b.open(0, &mut replay.clone()), Err(AuthError::Replayed));
        // A sequence number naming a lane beyond MAX_LANES, or count 0, is refused.
        let mut far = FarmAuth::new(&c, A, [A, B], 100);
        far.next_seq = (MAX_LANES as u64) << LANE_SHIFT | 1;
        let mut f = frame();
        assert!(far.seal(&mut f));
        assert_eq!(b.open(0, &mut f), Err(AuthError::Replayed));
        far.next_seq = 2 << LANE_SHIFT;
        let mut f = frame();
        assert!(far.seal(&mut f));
        assert_eq!(b.open(0, &mut f), Err(AuthError::Replayed));
    }

    #[test]
    fn restart_takes_a_new_epoch_and_refuses_the_old_one() {
        let c = AuthConfig {
            key: FarmKey::from_bytes([1; 32]),
            mode: Mode::Authenticated,
        };
        let mut b = FarmAuth::new(&c, B, [A, B], 5);
        let mut a1 = FarmAuth::new(&c, A, [A, B], 100);
        let mut old = frame();
        assert!(a1.seal(&mut old));
        let mut f = frame();
        assert!(a1.seal(&mut f));
        assert!(b.open(0, &mut f).unwrap().restarted);
        // A restarts: sequence 1 again, a higher epoch.
        let mut a2 = FarmAuth::new(&c, A, [A, B], 200);
        let mut f = frame();
        assert!(a2.seal(&mut f));
        assert!(b.open(0, &mut f).unwrap().restarted);
        // A frame of the earlier boot is now refused, even unseen.
        assert_eq!(b.open(0, &mut old), Err(AuthError::OldEpoch));
        // Another farm's key, and the other mode.
        let other = AuthConfig {
            key: FarmKey::from_bytes([2; 32]),
            mode: Mode::Authenticated,
        };
        let mut stranger = FarmAuth::new(&other, A, [A, B], 300);
        let mut f = frame();
        assert!(stranger.seal(&mut f));
        assert_eq!(b.open(0, &mut f), Err(AuthError::BadTag));
        let enc = AuthConfig {
            mode: Mode::Encrypted,
            ..c
        };
        let mut e = FarmAuth::new(&enc, A, [A, B], 400);
        let mut f = frame();
        assert!(e.seal(&mut f));
        assert_eq!(b.open(0, &mut f), Err(AuthError::WrongMode));
    }
}
