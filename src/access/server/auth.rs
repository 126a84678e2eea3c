//! Who is calling `alliance serve`: bearer tokens, one role each, from `ALLIANCE_SERVE_TOKENS`.
//!
//! The variable holds `role=token` pairs separated by commas:
//! `ALLIANCE_SERVE_TOKENS="analyst=TOKEN1,engineer=TOKEN2"`. Roles are `analyst` and
//! `engineer`; a role may have several tokens (one per person or tool); a token has exactly one
//! role. A missing or empty variable, an unknown role, an empty token, a token shorter than
//! [`MIN_TOKEN_LEN`] characters or one given twice stops the server at startup with an error
//! that never shows a token.
//!
//! A call carries its token in the `authorization` header, either as `Bearer TOKEN` (the ADBC
//! driver's `adbc.flight.sql.authorization_header`, the JDBC driver's `token=`) or as HTTP basic
//! `Basic base64(user:TOKEN)` (any user name; the password is the token), which is what drivers
//! send to the Flight handshake when given a user and password. Tokens are compared in constant
//! time: the SHA-256 of the presented token is compared with the SHA-256 of every configured
//! token with [`subtle`], without stopping at the first match, so neither the position of the
//! first differing byte nor the length of a token leaks through timing. Tokens are never logged
//! and never appear in an error.

use crate::access::Role;
use crate::error::{Error, Result};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The environment variable holding the tokens.
pub const TOKENS_ENV: &str = "ALLIANCE_SERVE_TOKENS";

/// The shortest token accepted (a guessable token is refused at startup).
pub const MIN_TOKEN_LEN: usize = 16;

/// The configured tokens, kept as SHA-256 digests with their role.
pub struct Tokens {
    digests: Vec<([u8; 32], Role)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the digests: a digest of a short token can be brute-forced.
        let roles: Vec<Role> = self.digests.iter().map(|(_, r)| *r).collect();
        f.debug_struct("Tokens").field("roles", &roles).finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn config_error(reason: impl Into<String>) -> Error {
    Error::config(TOKENS_ENV, reason)
}

impl Tokens {
    /// Reads the tokens from [`TOKENS_ENV`].
    pub fn from_env() -> Result<Self> {
        Self::from_value(std::env::var(TOKENS_ENV).ok().as_deref())
    }

    /// The tokens from the variable's value (`None` when it is not set).
    pub fn from_value(value: Option<&str>) -> Result<Self> {
        let text = value.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(Error::MissingSecret {
                var: TOKENS_ENV.into(),
                purpose: "alliance serve needs at least one bearer token, as \
                          ALLIANCE_SERVE_TOKENS=\"analyst=TOKEN1,engineer=TOKEN2\""
                    .into(),
            });
        }
        Self::parse(text)
    }

    /// Parses `role=token[,role=token…]`. Errors name the entry's position and role, never the
    /// token.
    pub fn parse(text: &str) -> Result<Self> {
        let mut digests: Vec<([u8; 32], Role)> = Vec::new();
        for (i, entry) in text.split(',').map(str::trim).enumerate() {
            let n = i + 1;
            if entry.is_empty() {
                return Err(config_error(format!("entry {n} is empty (expected role=token)")));
            }
            let Some((role, token)) = entry.split_once('=') else {
                return Err(config_error(format!("entry {n} is not role=token")));
            };
            let role = match role.trim().to_ascii_lowercase().as_str() {
                "analyst" => Role::Analyst,
                "engineer" => Role::Engineer,
                _ => return Err(config_error(format!("entry {n}: unknown role (expected analyst or engineer)"))),
            };
            let token = token.trim();
            if token.chars().count() < MIN_TOKEN_LEN {
                return Err(config_error(format!(
                    "entry {n} ({role}): the token is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(config_error(format!("entry {n} ({role}): the token contains whitespace")));
            }
            let d = digest(token.as_bytes());
            if digests.iter().any(|(other, _)| bool::from(other.ct_eq(&d))) {
                return Err(config_error(format!("entry {n} ({role}): the same token is given twice")));
            }
            digests.push((d, role));
        }
        Ok(Self { digests })
    }

    /// How many tokens each role has (for the startup log line).
    pub fn count(&self, role: Role) -> usize {
        self.digests.iter().filter(|(_, r)| *r == role).count()
    }

    /// The role of `token`, if it is one of the configured tokens. Constant time in the token's
    /// bytes: every configured digest is compared in full.
    pub fn role_of(&self, token: &[u8]) -> Option<Role> {
        let presented = digest(token);
        // 0 = none, 1 = analyst, 2 = engineer; selected without branching on secret data.
        let mut found = 0u8;
        for (d, role) in &self.digests {
            let code = match role {
                Role::Analyst => 1u8,
                Role::Engineer => 2u8,
            };
            found.conditional_assign(&code, d.ct_eq(&presented));
        }
        match found {
            1 => Some(Role::Analyst),
            2 => Some(Role::Engineer),
            _ => None,
        }
    }

    /// The role of the caller from the value of its `authorization` header (`Bearer TOKEN` or
    /// `Basic base64(user:TOKEN)`).
    pub fn authenticate(&self, header: Option<&str>) -> Result<Role> {
        let token = credential(header)?;
        self.role_of(&token).ok_or_else(|| Error::Unauthenticated { reason: "the token is not valid".into() })
    }
}

/// The token carried by an `authorization` header value.
pub fn credential(header: Option<&str>) -> Result<Vec<u8>> {
    let unauthenticated = |reason: &str| Error::Unauthenticated { reason: reason.into() };
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or_else(|| {
        unauthenticated(
            "no authorization header: send 'authorization: Bearer TOKEN' or basic auth with the token as password",
        )
    })?;
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
        return Ok(value.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Padded or not: Go's Flight client sends unpadded base64.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded =
            engine.decode(value).map_err(|_| unauthenticated("the basic authorization header is not base64"))?;
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return Err(unauthenticated("the basic authorization header is not user:password"));
        };
        return Ok(decoded[colon + 1..].to_vec());
    }
    Err(unauthenticated("the authorization header is neither 'Bearer TOKEN' nor basic auth"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "analyst-token-0123456789";
    const E: &str = "engineer-token-abcdefghij";

    #[test]
    fn tokens_parse_into_roles_and_bad_lists_are_refused_without_showing_tokens() {
        let tokens = Tokens::parse(&format!(" analyst={A} , Engineer={E},analyst=second-analyst-token")).unwrap();
        assert_eq!((tokens.count(Role::Analyst), tokens.count(Role::Engineer)), (2, 1));
        assert_eq!(tokens.role_of(A.as_bytes()), Some(Role::Analyst));
        assert_eq!(tokens.role_of(b"second-analyst-token"), Some(Role::Analyst));
        assert_eq!(tokens.role_of(E.as_bytes()), Some(Role::Engineer));
        assert_eq!(tokens.role_of(b""), None);
        assert_eq!(tokens.role_of(&A.as_bytes()[..A.len() - 1]), None, "a prefix is not the token");
        assert_eq!(tokens.role_of(format!("{A}x").as_bytes()), None, "nor a longer one");
        assert!(!format!("{tokens:?}").contains(A));

        for (text, expected) in [
            (format!("analyst={A},"), "entry 2 is empty"),
            (format!("analyst {A}"), "entry 1 is not role=token"),
            (format!("admin={A}"), "entry 1: unknown role"),
            ("analyst=tiny7".to_string(), "entry 1 (analyst): the token is shorter than 16"),
            (format!("analyst={A},engineer={A}"), "entry 2 (engineer): the same token is given twice"),
            ("engineer=has a space in the token".to_string(), "contains whitespace"),
        ] {
            let message = Tokens::parse(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(message.contains(TOKENS_ENV), "{message}");
            assert!(!message.contains(A) && !message.contains("tiny7"), "no token in {message}");
        }
    }

    #[test]
    fn a_missing_or_empty_variable_is_a_clear_startup_error() {
        for value in [None, Some(""), Some("  ")] {
            let e = Tokens::from_value(value).unwrap_err();
            assert!(matches!(e, Error::MissingSecret { .. }), "{value:?}: {e}");
            let message = e.to_string();
            assert!(message.contains("ALLIANCE_SERVE_TOKENS is not set"), "{message}");
            assert!(message.contains("analyst=TOKEN1,engineer=TOKEN2"), "says what to set: {message}");
        }
        assert!(Tokens::parse(" , ").is_err());
        assert_eq!(Tokens::from_value(Some(&format!("engineer={E}"))).unwrap().count(Role::Engineer), 1);
    }

    #[test]
    fn bearer_and_basic_headers_carry_the_token() {
        let tokens = Tokens::parse(&format!("analyst={A},engineer={E}")).unwrap();
        assert_eq!(tokens.authenticate(Some(&format!("Bearer {A}"))).unwrap(), Role::Analyst);
        assert_eq!(tokens.authenticate(Some(&format!("bearer  {E} "))).unwrap(), Role::Engineer);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("someone:{E}"));
        assert_eq!(tokens.authenticate(Some(&format!("Basic {basic}"))).unwrap(), Role::Engineer);
        let no_user = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!(":{A}"));
        assert_eq!(tokens.authenticate(Some(&format!("Basic {no_user}"))).unwrap(), Role::Analyst);
        for bad in [None, Some(""), Some("Bearer"), Some("Bearer wrong-token-0123456789"), Some("Basic ???"), Some(A)] {
            let e = tokens.authenticate(bad).unwrap_err();
            assert!(matches!(e, Error::Unauthenticated { .. }), "{bad:?}: {e}");
            assert!(!e.to_string().contains(A), "{e}");
        }
    }
}
