//! Who kiln believes.
//!
//! A team's shared cache is trusted the way Nix binary caches are: one secret key
//! signs, only in the step that uploads; every reader checks the public keys the
//! workspace commits (`trusted-keys`). Readers need no secret, so a pull request's
//! build can check what it restores as well as the job that publishes.
//!
//! Keys are Ed25519 (`ring`). A public key is written `NAME:<base64 of 32 bytes>`, a
//! secret key `NAME:<base64 of the 32-byte seed and the public key>`, and a signature
//! `NAME:<base64 of 64 bytes>`: the name says which key to check a signature with,
//! so several keys can be trusted at once (rotation). A signature covers one record's
//! canonical bytes under a [`Domain`], so a signed record of one kind can never pass
//! for another.

mod files;

pub use files::{read_secret_file, write_secret_file};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use kiln_diagnostics::{Error, Result};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use std::sync::Arc;

/// What every signed message starts with: kiln's signatures and nothing else's.
const CONTEXT: &[u8] = b"kiln-signature-v1\0";

/// The longest key name kiln accepts.
const NAME_MAX: usize = 64;

/// The kind of record a signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// A cache entry (a binary or a native library, by key).
    Entry,
    /// A learned build-script record (by package identity).
    Learned,
}

impl Domain {
    fn tag(self) -> &'static [u8] {
        match self {
            Domain::Entry => b"entry\0",
            Domain::Learned => b"learned\0",
        }
    }
}

fn message(domain: Domain, bytes: &[u8]) -> Vec<u8> {
    [CONTEXT, domain.tag(), bytes].concat()
}

/// Whether `name` can name a key: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn is_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `NAME:<base64>` split and decoded to exactly `len` bytes.
fn split(text: &str, len: usize) -> Option<(&str, Vec<u8>)> {
    let (name, b64) = text.trim().split_once(':')?;
    let bytes = BASE64.decode(b64).ok()?;
    (is_key_name(name) && bytes.len() == len).then_some((name, bytes))
}

/// A public key readers trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    bytes: [u8; 32],
}

impl PublicKey {
    /// Parses `NAME:<base64 of 32 bytes>`.
    pub fn parse(text: &str) -> Result<Self> {
        let (name, bytes) = split(text, 32).ok_or_else(|| {
            Error::usage(format!(
                "`{}` is not a kiln public key",
                kiln_diagnostics::printable(text, 80)
            ))
            .hint(
                "a public key is what `kiln cache keygen NAME --out FILE` prints: `NAME:<base64>`",
            )
        })?;
        Ok(Self {
            name: name.into(),
            bytes: bytes.try_into().expect("32 bytes"),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.bytes))
    }
}

/// A secret signing key. Never printed: `Debug` shows only its name.
#[derive(Clone)]
pub struct SecretKey {
    name: String,
    pair: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.name)
    }
}

impl SecretKey {
    /// A new key named `name`, with its text form (`NAME:<base64>`) to store.
    pub fn generate(name: &str) -> Result<(Self, String)> {
        if !is_key_name(name) {
            return Err(Error::usage(format!(
                "`{}` can't name a key",
                kiln_diagnostics::printable(name, 80)
            ))
            .hint("use 1 to 64 letters, digits, `.`, `_` or `-`, e.g. `chronik-ci-1`"));
        }
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| Error::environment("the system's random number generator failed"))?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| Error::internal("a fresh Ed25519 seed was refused"))?;
        let text = format!(
            "{name}:{}\n",
            BASE64.encode([&seed[..], pair.public_key().as_ref()].concat())
        );
        Ok((
            Self {
                name: name.into(),
                pair: Arc::new(pair),
            },
            text,
        ))
    }

    /// Parses a secret key's text. The error never repeats the text.
    pub fn parse(text: &str) -> Result<Self> {
        let refused = || {
            Error::usage("the signing key is not a kiln secret key")
                .hint("generate one with `kiln cache keygen NAME --out FILE` and pass the file's content or its path")
        };
        let (name, bytes) = split(text, 64).ok_or_else(refused)?;
        let pair = Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..])
            .map_err(|_| refused())?;
        Ok(Self {
            name: name.into(),
            pair: Arc::new(pair),
        })
    }

    /// The key a variable holds: its text, or the path of a file holding it (which
    /// must be readable by its owner only). `var` names the variable in errors; the
    /// value is never shown.
    pub fn from_env_value(value: &[u8], var: &str) -> Result<Self> {
        let text = String::from_utf8_lossy(value);
        if let Ok(key) = Self::parse(&text) {
            return Ok(key);
        }
        let path = std::path::Path::new(text.trim());
        if !text.contains('\n') && path.is_absolute() && path.is_file() {
            return Self::parse(&read_secret_file(path)?).map_err(|e| {
                Error::usage(format!("the file {var} names holds no kiln secret key"))
                    .hint(e.hints().first().cloned().unwrap_or_default())
            });
        }
        Err(Error::usage(format!(
            "{var} holds neither a kiln secret key nor the absolute path of a file with one"
        ))
        .hint("generate a key with `kiln cache keygen NAME --out FILE`; set the variable to the file's content or its path")
        .hint("kiln no longer signs with a shared HMAC secret: readers now check public keys (`trusted-keys`)"))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, for readers' `trusted-keys`.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            bytes: self
                .pair
                .public_key()
                .as_ref()
                .try_into()
                .expect("Ed25519 public keys are 32 bytes"),
        }
    }

    /// The signature of `bytes` as a record of `domain`: `NAME:<base64>`.
    pub fn sign(&self, domain: Domain, bytes: &[u8]) -> String {
        let sig = self.pair.sign(&message(domain, bytes));
        format!("{}:{}", self.name, BASE64.encode(sig.as_ref()))
    }
}

/// The public keys a reader accepts signatures from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    /// Parses every key; the first that isn't one is the error.
    pub fn parse<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        keys.into_iter()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(PublicKey::parse)
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// Also trusts `key` (a signer trusts its own public key).
    pub fn with(mut self, key: PublicKey) -> Self {
        if !self.0.contains(&key) {
            self.0.push(key);
        }
        self
    }

    /// Whether no key is trusted (checking is then off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys, in the order configured.
    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    /// The name of a trusted key that made one of `signatures` over `bytes` as a
    /// record of `domain`, if any did. Malformed signatures are passed over.
    pub fn verify(&self, domain: Domain, bytes: &[u8], signatures: &[String]) -> Option<&str> {
        let msg = message(domain, bytes);
        signatures.iter().find_map(|s| {
            let (name, sig) = split(s, 64)?;
            self.0
                .iter()
                .filter(|k| k.name == name)
                .find(|k| {
                    UnparsedPublicKey::new(&ED25519, k.bytes)
                        .verify(&msg, &sig)
                        .is_ok()
                })
                .map(|k| k.name.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_key_its_domain_and_its_bytes() {
        let (key, text) = SecretKey::generate("team-1").unwrap();
        assert_eq!(SecretKey::parse(&text).unwrap().public(), key.public());
        let trusted = TrustedKeys::parse([key.public().to_string().as_str()]).unwrap();
        let sig = key.sign(Domain::Entry, b"record");
        assert!(sig.starts_with("team-1:"));
        assert_eq!(
            trusted.verify(Domain::Entry, b"record", std::slice::from_ref(&sig)),
            Some("team-1")
        );
        assert_eq!(
            trusted.verify(Domain::Learned, b"record", std::slice::from_ref(&sig)),
            None,
            "another domain"
        );
        assert_eq!(
            trusted.verify(Domain::Entry, b"recorD", std::slice::from_ref(&sig)),
            None
        );
        let (other, _) = SecretKey::generate("team-1").unwrap();
        let forged = other.sign(Domain::Entry, b"record");
        assert_eq!(trusted.verify(Domain::Entry, b"record", &[forged]), None);
        // Rotation: any trusted key's signature is enough, junk is passed over.
        let both = trusted.clone().with(other.public());
        let sigs = ["junk".to_string(), other.sign(Domain::Entry, b"record")];
        assert_eq!(both.verify(Domain::Entry, b"record", &sigs), Some("team-1"));
        assert!(TrustedKeys::default()
            .verify(Domain::Entry, b"record", &[sig])
            .is_none());
    }

    #[test]
    fn bad_keys_are_usage_errors_that_never_echo_a_secret() {
        for bad in ["", "name", "na me:AAAA", "n:not-base64!", "n:AAAA"] {
            assert!(PublicKey::parse(bad).is_err(), "{bad}");
        }
        let (_, text) = SecretKey::generate("k").unwrap();
        let public_only = format!("k:{}", &text.trim()[2..46]);
        let e = SecretKey::parse(&public_only).unwrap_err();
        assert!(!e.to_string().contains(&public_only[2..]));
        let e = SecretKey::from_env_value(b"hunter2-hmac-secret", "KILN_CACHE_SIGNING_KEY")
            .unwrap_err();
        assert!(!format!("{e} {:?}", e.hints()).contains("hunter2"));
        assert!(SecretKey::generate("bad name").is_err());
        // A public key can't pass for a secret one, nor a tampered secret key.
        let mut bytes = BASE64
            .decode(text.trim().split_once(':').unwrap().1)
            .unwrap();
        bytes[40] ^= 1;
        assert!(SecretKey::parse(&format!("k:{}", BASE64.encode(bytes))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_text_panics_the_parsers(s in ".{0,200}") {
            let _ = PublicKey::parse(&s);
            let _ = SecretKey::parse(&s);
            let _ = TrustedKeys::default().verify(Domain::Entry, b"x", &[s]);
        }
    }
}
