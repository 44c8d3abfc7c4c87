//! The shared cache's trust, resolved from the config and the environment.

use super::{Origin, Setting};
use crate::env::Env;
use kiln_diagnostics::Result;

/// The shared cache's trust: the public keys readers check, and the secret key
/// (environment only) the uploading step signs with.
#[derive(Debug, Clone)]
pub struct Trust {
    /// `trusted-keys` / `KILN_CACHE_TRUSTED_KEYS`, plus the signing key's own public
    /// key (a signer trusts what it signed).
    pub keys: Setting<kiln_trust::TrustedKeys>,
    /// `KILN_CACHE_SIGNING_KEY`.
    pub signer: Option<kiln_trust::SecretKey>,
}

impl Trust {
    /// Whether records must be signed by a trusted key to be used (and whether only
    /// what this machine built or verified may be uploaded).
    pub fn enforced(&self) -> bool {
        !self.keys.value.is_empty()
    }

    pub(super) fn resolve(env: &Env, file: Option<Vec<crate::TrustedKey>>) -> Result<Self> {
        // A value that names no key must never switch checking off silently.
        if env
            .trusted_keys
            .as_ref()
            .is_some_and(|list| list.split(',').all(|k| k.trim().is_empty()))
        {
            return Err(kiln_diagnostics::Error::usage(
                "KILN_CACHE_TRUSTED_KEYS is set but names no key: it would turn signature checking off",
            )
            .hint("list the public keys (`NAME:<base64>`, comma-separated), or unset it to use `trusted-keys` from Cargo.toml"));
        }
        if file.as_ref().is_some_and(Vec::is_empty) {
            return Err(kiln_diagnostics::Error::usage(
                "`trusted-keys` in [workspace.metadata.kiln.cache] is empty: it would turn signature checking off",
            )
            .hint("list the public keys, or remove the key to say that no signatures are checked"));
        }
        let keys = match &env.trusted_keys {
            Some(list) => Setting::new(
                kiln_trust::TrustedKeys::parse(list.split(',')).map_err(|e| {
                    kiln_diagnostics::Error::usage(format!(
                        "invalid KILN_CACHE_TRUSTED_KEYS: {e}"
                    ))
                    .hint("list public keys (`NAME:<base64>`, as `kiln cache keygen` prints them), comma-separated")
                })?,
                Origin::Env("KILN_CACHE_TRUSTED_KEYS"),
            ),
            None => match file {
                Some(keys) => Setting::new(
                    keys.into_iter()
                        .fold(kiln_trust::TrustedKeys::default(), |k, t| k.with(t.0)),
                    Origin::Config("cache.trusted-keys"),
                ),
                None => Setting::new(Default::default(), Origin::Default),
            },
        };
        let signer = env
            .signing_key
            .as_ref()
            .map(|s| kiln_trust::SecretKey::from_env_value(s.expose(), "KILN_CACHE_SIGNING_KEY"))
            .transpose()?;
        if signer.is_some() && keys.value.is_empty() {
            return Err(kiln_diagnostics::Error::usage(
                "KILN_CACHE_SIGNING_KEY is set but no keys are trusted: readers would check no signature, so signing would protect nothing",
            )
            .hint("add the signing key's public key (`kiln cache keygen` printed it) to `trusted-keys` in [workspace.metadata.kiln.cache] and commit it"));
        }
        let keys = match &signer {
            Some(k) => keys.map(|t| t.with(k.public())),
            None => keys,
        };
        Ok(Self { keys, signer })
    }
}
