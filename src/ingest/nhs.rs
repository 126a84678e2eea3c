//! NHS numbers: modulus-11 validation and keyed pseudonymisation.
//!
//! A valid NHS number is ten digits (spaces and hyphens allowed in the source) whose tenth digit
//! is the modulus-11 check digit of the first nine (weights 10..2; 11 → 0; 10 is never valid).
//! The pseudonym is the first 128 bits of HMAC-SHA256(key, ten digits), as 32 lowercase hex
//! characters: stable for a key, unlinkable without it. The raw number is never stored or logged.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Validates and normalises an NHS number to its ten digits.
pub fn validate(raw: &str) -> Result<[u8; 10], String> {
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
    let sum: u32 = digits[..9].iter().enumerate().map(|(i, d)| (d - b'0') as u32 * (10 - i as u32)).sum();
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

/// The check digit that makes nine digits a valid NHS number, if any (for generators).
pub fn check_digit(first9: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first9.iter().enumerate().map(|(i, d)| *d as u32 * (10 - i as u32)).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// Keyed pseudonymiser. The keyed MAC state is computed once and cloned per value.
#[derive(Clone)]
pub struct Pseudonymiser {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(<key withheld>)")
    }
}

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Self {
        Self { keyed: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length") }
    }

    /// 32-hex-character pseudonym of a validated NHS number.
    pub fn pseudonym(&self, digits: &[u8; 10]) -> String {
        let mut out = [0u8; 32];
        self.pseudonym_into(digits, &mut out).to_string()
    }

    /// The pseudonym written into a caller's buffer (no allocation per value).
    pub fn pseudonym_into<'a>(&self, digits: &[u8; 10], out: &'a mut [u8; 32]) -> &'a str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.keyed.clone();
        mac.update(digits);
        let tag = mac.finalize().into_bytes();
        for (i, b) in tag[..16].iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 15) as usize];
        }
        std::str::from_utf8(out).expect("hex is ASCII")
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
        assert_eq!(check_digit(&[9, 4, 3, 4, 7, 6, 5, 9, 1]), Some(9));
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = Pseudonymiser::new(b"0123456789abcdef-key-a");
        let b = Pseudonymiser::new(b"0123456789abcdef-key-b");
        let d = validate("9434765919").unwrap();
        assert_eq!(a.pseudonym(&d), a.pseudonym(&d));
        assert_ne!(a.pseudonym(&d), b.pseudonym(&d));
        assert_eq!(a.pseudonym(&d).len(), 32);
        assert!(!a.pseudonym(&d).contains("9434765919"));
        assert!(!format!("{a:?}").contains("key-a"));
    }
}
