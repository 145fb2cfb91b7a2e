//! The Internet checksum (RFC 1071) over a sequence of byte slices.
//!
//! The slices are summed as if they were one contiguous buffer (an odd-length
//! slice carries its last byte over as the high half of a word completed by
//! the next slice), and a trailing odd byte is padded with zero, as RFC 1071
//! says. Sums accumulate in a `u64`, so no input length can overflow them.

/// Ones'-complement sum of `parts`, folded to 16 bits (not complemented).
pub fn sum(parts: &[&[u8]]) -> u16 {
    let mut acc: u64 = 0;
    // True when the previous slice ended on the high byte of a word.
    let mut odd = false;
    for part in parts {
        let mut data: &[u8] = part;
        if odd {
            match data.split_first() {
                Some((&low, rest)) => {
                    acc += u64::from(low);
                    data = rest;
                    odd = false;
                }
                None => continue,
            }
        }
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [high] = words.remainder() {
            acc += u64::from(*high) << 8;
            odd = true;
        }
    }
    fold(acc)
}

/// The checksum value to store: the complement of [`sum`].
pub fn checksum(parts: &[&[u8]]) -> u16 {
    !sum(parts)
}

/// True when `parts` (which include a stored checksum) sum to 0xffff, i.e.
/// their checksum computed including the checksum field is 0.
pub fn verifies(parts: &[&[u8]]) -> bool {
    checksum(parts) == 0
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&[&data]), 0xddf2);
        assert_eq!(checksum(&[&data]), !0xddf2);
    }

    #[test]
    fn split_anywhere_gives_same_sum() {
        let data: Vec<u8> = (0u16..301).map(|i| (i * 37 % 251) as u8).collect();
        let whole = sum(&[&data]);
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(sum(&[a, b]), whole, "cut at {cut}");
            let (b1, b2) = b.split_at(b.len() / 2);
            assert_eq!(sum(&[a, &[], b1, b2]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn odd_tail_is_zero_padded() {
        assert_eq!(sum(&[&[0x12]]), 0x1200);
        assert_eq!(sum(&[&[0x12, 0x34, 0x56]]), 0x1234 + 0x5600);
    }

    #[test]
    fn stored_checksum_verifies() {
        let mut data = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x01];
        let c = checksum(&[&data]);
        data[4..6].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(&[&data]));
        data[0] ^= 1;
        assert!(!verifies(&[&data]));
    }

    #[test]
    fn large_input_does_not_overflow() {
        let data = vec![0xffu8; 1 << 20];
        assert_eq!(sum(&[&data]), 0xffff);
    }
}
