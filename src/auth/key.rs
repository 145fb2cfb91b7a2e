//! The farm key: 32 secret bytes every node of a farm shares, read from a
//! file the farm file names (never written in the farm file itself), and the
//! per-sender keys derived from it.
//!
//! The file holds 64 hexadecimal digits (`scripts/farm` writes one with
//! `od -An -tx1 -N32 /dev/urandom | tr -d ' \n'`; `openssl rand -hex 32`
//! does as well); whitespace around them is ignored. It must
//! be a regular file that neither its group nor others may read or write
//! (`chmod 600`): a node refuses to start otherwise, as ssh does with keys.
//!
//! **Keys per sender and boot.** A node seals its frames with
//! `HKDF-SHA256(salt = "ipos farm frames v1", ikm = farm key, info = its MAC
//! || its epoch, 8 bytes big-endian)` (RFC 5869), and opens a peer's frames
//! with the key derived from the peer's MAC and epoch. Nonces (the sequence
//! number) are unique per key, so no node ever uses a nonce twice under one. Every member can derive every key: the
//! key keeps out whoever is not a farm member, not one member from another.

use hkdf::Hkdf;
use sha2::Sha256;
use smoltcp::wire::EthernetAddress;
use std::fmt;
use std::path::Path;

/// Length of the farm key.
pub const KEY_LEN: usize = 32;
const SALT: &[u8] = b"ipos farm frames v1";

/// The farm's shared secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct FarmKey([u8; KEY_LEN]);

impl fmt::Debug for FarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FarmKey(..)")
    }
}

/// Why a key file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The file could not be read.
    Unreadable(String),
    /// Not a regular file.
    NotAFile,
    /// Group or others have access (the mode bits, octal).
    TooOpen(u32),
    /// Not 64 hexadecimal digits.
    BadFormat,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Unreadable(e) => write!(f, "cannot read the key file: {e}"),
            KeyError::NotAFile => write!(f, "the key file is not a regular file"),
            KeyError::TooOpen(m) => write!(
                f,
                "the key file's mode is {m:04o}: its group or others may read it; chmod 600 it"
            ),
            KeyError::BadFormat => write!(
                f,
                "the key file must hold 64 hexadecimal digits (e.g. `openssl rand -hex 32`)"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl FarmKey {
    /// A key from its bytes.
    pub const fn from_bytes(b: [u8; KEY_LEN]) -> FarmKey {
        FarmKey(b)
    }

    /// Parses 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<FarmKey, KeyError> {
        let t = text.trim().as_bytes();
        if t.len() != 2 * KEY_LEN {
            return Err(KeyError::BadFormat);
        }
        let digit = |c: u8| (c as char).to_digit(16).ok_or(KeyError::BadFormat);
        let mut k = [0u8; KEY_LEN];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (digit(t[2 * i])? << 4 | digit(t[2 * i + 1])?) as u8;
        }
        Ok(FarmKey(k))
    }

    /// The key as 64 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a key file, refusing one that group or others may access.
    pub fn load(path: &Path) -> Result<FarmKey, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| KeyError::Unreadable(e.to_string()))?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile);
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen(mode));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable(e.to_string()))?;
        FarmKey::from_hex(&text)
    }

    /// A fresh random key (from the kernel's random source).
    pub fn generate() -> std::io::Result<FarmKey> {
        use std::io::Read;
        let mut k = [0u8; KEY_LEN];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
        Ok(FarmKey(k))
    }

    /// The key the node with MAC `mac` seals its frames with in `epoch`.
    pub fn sender_key(&self, mac: EthernetAddress, epoch: u64) -> [u8; KEY_LEN] {
        let mut info = [0u8; 14];
        info[..6].copy_from_slice(mac.as_bytes());
        info[6..].copy_from_slice(&epoch.to_be_bytes());
        let mut out = [0u8; KEY_LEN];
        Hkdf::<Sha256>::new(Some(SALT), &self.0)
            .expand(&info, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hex_round_trip_and_refusals() {
        let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let k = FarmKey::from_hex(&format!("  {hex}\n")).unwrap();
        assert_eq!(k.to_hex(), hex);
        assert_eq!(format!("{k:?}"), "FarmKey(..)");
        assert_eq!(FarmKey::from_hex(&hex[1..]), Err(KeyError::BadFormat));
        assert_eq!(
            FarmKey::from_hex(&hex.replace('a', "g")),
            Err(KeyError::BadFormat)
        );
    }

    #[test]
    fn sender_keys_differ_per_mac_and_are_stable() {
        let k = FarmKey::from_bytes([7; KEY_LEN]);
        let a = k.sender_key(EthernetAddress([2, 0, 0, 0, 0, 1]), 5);
        let b = k.sender_key(EthernetAddress([2, 0, 0, 0, 0, 2]), 5);
        assert_ne!(a, b);
        assert_ne!(a, k.sender_key(EthernetAddress([2, 0, 0, 0, 0, 1]), 6));
        assert_eq!(a, k.sender_key(EthernetAddress([2, 0, 0, 0, 0, 1]), 5));
        // HKDF-SHA256 of this key, salt, MAC and epoch 5: the derivation must not change.
        let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex, SENDER_KEY_VECTOR);
    }

    /// Computed independently (Python `hmac`/`hashlib`, RFC 5869 extract and expand).
    const SENDER_KEY_VECTOR: &str =
        "2a5dc8428e32de50c4683da3d286eed98c27191d2205c566dd33cef620696a60";

    #[test]
    fn key_file_permissions() {
        let dir = std::env::temp_dir().join(format!("ipos-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("farm.key");
        let k = FarmKey::from_bytes([9; KEY_LEN]);
        std::fs::write(&path, k.to_hex()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(FarmKey::load(&path), Err(KeyError::TooOpen(0o644)));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(FarmKey::load(&path), Ok(k));
        assert_eq!(FarmKey::load(&dir), Err(KeyError::NotAFile));
        assert!(matches!(
            FarmKey::load(&dir.join("missing")),
            Err(KeyError::Unreadable(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(FarmKey::generate().unwrap(), FarmKey::generate().unwrap());
    }
}
