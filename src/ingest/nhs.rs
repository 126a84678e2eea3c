//! NHS numbers: modulus-11 validation and keyed pseudonymisation.
//!
//! A valid NHS number is ten digits (spaces and hyphens allowed in the source) whose tenth digit
//! is the modulus-11 check digit of the first nine (weights 10..2; 11 → 0; 10 is never valid).
//! The pseudonym is the first 128 bits of HMAC-SHA256(key, ten digits), stored as 16 bytes
//! (Arrow `FixedSizeBinary(16)`, Parquet `FIXED_LEN_BYTE_ARRAY(16)`; `alliance query` shows it as
//! 32 hex digits): stable for a key, unlinkable without it. The raw number is never stored or
//! logged.

use sha2::{Digest, Sha256};

/// Bytes of a pseudonym.
pub const PSEUDONYM_BYTES: usize = 16;

/// Validates and normalises an NHS number to its ten digits.
pub fn validate(raw: &str) -> Result<[u8; 10], String> {
    // The usual form, ten bare digits, is checked without the general scan.
    let digits = match <[u8; 10]>::try_from(raw.as_bytes()) {
        Ok(d) if d.iter().fold(true, |all, b| all & b.is_ascii_digit()) => d,
        _ => gather_digits(raw)?,
    };
    let sum: u32 = digits[..9].iter().zip((2..=10u32).rev()).map(|(d, w)| (d - b'0') as u32 * w).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return Err("invalid NHS number: check digit cannot be 10".into()),
        c => c,
    };
    if check != (digits[9] - b'0') as u32 {
        return Err("invalid NHS number: modulus-11 check digit fails".into());
    }
    Ok(digits)
}

/// The ten digits of a number written with spaces or hyphens.
fn gather_digits(raw: &str) -> Result<[u8; 10], String> {
    let mut digits = [0u8; 10];
    let mut n = 0;
    for b in raw.bytes() {
        match b {
            b'0'..=b'9' if n < 10 => {
                digits[n] = b;
                n += 1;
            }
            b' ' | b'-' => {}
            _ => return Err("invalid NHS number: not ten digits".into()),
        }
    }
    if n != 10 {
        return Err("invalid NHS number: not ten digits".into());
    }
    Ok(digits)
}

/// The check digit that makes nine digits a valid NHS number, if any (for generators).
pub fn check_digit(first9: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first9.iter().enumerate().map(|(i, d)| *d as u32 * (10 - i as u32)).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// Keyed pseudonymiser: HMAC-SHA256 (RFC 2104) computed from the SHA-256 compression function.
///
/// The key's inner and outer padded blocks are compressed once, at construction; each value then
/// costs exactly two compressions (the ten digits with their padding fit one block, as does the
/// inner digest), with no hasher state cloned or buffered per value. The test checks the result
/// against the `hmac` crate for short, block-sized and long keys.
#[derive(Clone)]
pub struct Pseudonymiser {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, &[(*block).into()]);
}

/// One final SHA-256 block: `message` (at most 55 bytes) after `prefix_len` already-compressed
/// bytes, with the padding and the total length in bits.
fn final_block(message: &[u8], prefix_len: u64) -> [u8; 64] {
    let mut block = [0u8; 64];
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    block[56..].copy_from_slice(&((prefix_len + message.len() as u64) * 8).to_be_bytes());
    block
}

fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<key withheld>)")
    }
}

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Self {
        let mut padded = [0u8; 64];
        if key.len() > 64 {
            padded[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            padded[..key.len()].copy_from_slice(key);
        }
        let (mut ipad, mut opad) = (padded, padded);
        ipad.iter_mut().for_each(|b| *b ^= 0x36);
        opad.iter_mut().for_each(|b| *b ^= 0x5c);
        let (mut inner, mut outer) = (SHA256_IV, SHA256_IV);
        compress(&mut inner, &ipad);
        compress(&mut outer, &opad);
        Self { inner, outer }
    }

    /// The pseudonym of a validated NHS number: the first 16 bytes of HMAC-SHA256(key, digits).
    pub fn pseudonym(&self, digits: &[u8; 10]) -> [u8; PSEUDONYM_BYTES] {
        let mut inner = self.inner;
        compress(&mut inner, &final_block(digits, 64));
        let mut outer = self.outer;
        compress(&mut outer, &final_block(&digest_bytes(&inner), 64));
        let mut tag = [0u8; PSEUDONYM_BYTES];
        tag.copy_from_slice(&digest_bytes(&outer)[..PSEUDONYM_BYTES]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mod11() {
        // 943 476 5919 is the NHS's documented example of a valid number.
        assert_eq!(&validate("943 476 5919").unwrap(), b"9434765919");
        assert!(validate("9434765918").unwrap_err().contains("modulus-11"));
        assert!(validate("94347659").is_err());
        assert!(validate("94347659190").is_err());
        assert!(validate("943476591X").is_err());
        assert!(validate("943-476-5919X").is_err());
        assert_eq!(&validate("943-476-5919").unwrap(), b"9434765919");
        assert!(validate("9434765918").unwrap_err().contains("modulus-11"));
        assert!(validate("9434765 18").unwrap_err().contains("ten digits"));
        // A check digit of 10 is never valid (first nine digits weighing 1 mod 11).
        let nine = (0..1_000_000_000u64)
            .step_by(7919)
            .map(|n| format!("{n:09}"))
            .find(|n| check_digit(&n.bytes().map(|b| b - b'0').collect::<Vec<_>>().try_into().unwrap()).is_none())
            .unwrap();
        assert!(validate(&format!("{nine}0")).unwrap_err().contains("cannot be 10"));
        assert_eq!(check_digit(&[9, 4, 3, 4, 7, 6, 5, 9, 1]), Some(9));
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = Pseudonymiser::new(b"0123456789abcdef-key-a");
        let b = Pseudonymiser::new(b"0123456789abcdef-key-b");
        let d = validate("9434765919").unwrap();
        assert_eq!(a.pseudonym(&d), a.pseudonym(&d));
        assert_ne!(a.pseudonym(&d), b.pseudonym(&d));
        assert!(!a.pseudonym(&d).windows(10).any(|w| w == b"9434765919"));
        assert!(!format!("{a:?}").contains("key-a"));
    }

    #[test]
    fn pseudonym_is_truncated_hmac_sha256() {
        use hmac::{Hmac, Mac};
        for key in [b"k".to_vec(), vec![7u8; 64], (0..=200u8).collect::<Vec<u8>>(), b"0123456789abcdef".to_vec()] {
            let p = Pseudonymiser::new(&key);
            for number in ["9434765919", "4010232137", "0000000000"] {
                let digits: [u8; 10] = number.as_bytes().try_into().unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(&digits);
                let expected = mac.finalize().into_bytes();
                assert_eq!(p.pseudonym(&digits)[..], expected[..16], "key of {} bytes", key.len());
            }
        }
    }
}
