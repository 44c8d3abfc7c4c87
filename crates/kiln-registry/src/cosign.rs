//! cosign's signature layout, written without cosign: the simple-signing payload
//! naming the signed digest, an ECDSA P-256 (SHA-256) signature over exactly those
//! bytes, and a manifest tagged `sha256-<hex>.sig` whose one layer is the payload with
//! the base64 signature in the `dev.cosignproject.cosign/signature` annotation.
//! `cosign verify --key pub.pem <image>` accepts it.

use crate::Client;
use base64::Engine;
use kiln_diagnostics::{Error, Result};
use kiln_oci::{canonical_json, media, Descriptor};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::json;

/// The annotation that holds the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// An ECDSA P-256 private key; its bytes are never printed.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) ECDSA P-256 key. Errors
    /// say what is wrong with it, never what it holds.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let text = String::from_utf8_lossy(pem);
        let fix = "make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem` (or convert with `openssl pkcs8 -topk8 -nocrypt`)";
        if text.contains("ENCRYPTED") {
            return Err(Error::usage("the signing key is encrypted")
                .hint("give kiln an unencrypted PKCS#8 key (keep it in a secret store instead), e.g. `openssl pkcs8 -topk8 -nocrypt -in enc.pem -out key.pem`"));
        }
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END PRIVATE KEY-----"))
            .collect();
        if body.is_empty() {
            return Err(Error::usage("the signing key is not a PKCS#8 PEM private key").hint(fix));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| Error::usage("the signing key's PEM body is not base64").hint(fix))?;
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
            .map_err(|_| Error::usage("the signing key is not an ECDSA P-256 key").hint(fix))?;
        Ok(Self { pair, rng })
    }

    /// The public key as PEM (SubjectPublicKeyInfo), what `cosign verify --key` takes.
    pub fn public_pem(&self) -> String {
        // SPKI header for id-ecPublicKey with prime256v1, then the 65-byte point.
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(self.pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// Whether `signature` (ASN.1 DER, as cosign's annotation holds it after base64)
    /// is this key's over `message`.
    pub fn signed(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            self.pair.public_key().as_ref(),
        )
        .verify(message, signature)
        .is_ok()
    }

    /// An ASN.1 DER ECDSA signature over `message` (SHA-256).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::internal("ECDSA signing failed"))
    }
}

/// cosign's simple-signing payload for the image `digest` known as `reference`
/// (`registry/repository`).
pub fn payload(reference: &str, digest: &str) -> Vec<u8> {
    canonical_json(&json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .into_bytes()
}

/// The tag cosign looks for a signature of `digest` under.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

impl Client {
    /// Signs the pushed manifest `subject` (the index) with `key` in cosign's layout:
    /// uploads the payload and a config, then the signature manifest under
    /// [`signature_tag`]. Signatures already there (other keys', other signers') are
    /// kept, as cosign keeps them: this one is added, unless this key signed that
    /// payload already. Returns the tag.
    pub fn sign(&self, subject: &Descriptor, key: &SigningKey) -> Result<String> {
        let reference = format!("{}/{}", self.registry(), self.repository());
        let payload = payload(&reference, &subject.digest);
        let layer = Descriptor::of(media::COSIGN_PAYLOAD, &payload);
        let tag = signature_tag(&subject.digest);
        let mut layers = self.signature_layers(&tag)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let already = layers.iter().any(|l| {
            l["digest"] == layer.digest.as_str()
                && l["annotations"][SIGNATURE_ANNOTATION]
                    .as_str()
                    .and_then(|s| b64.decode(s).ok())
                    .is_some_and(|sig| key.signed(&payload, &sig))
        });
        if already {
            return Ok(tag);
        }
        let signature = b64.encode(key.sign(&payload)?);
        let mut layer_json = layer.to_json();
        layer_json["annotations"] = json!({ SIGNATURE_ANNOTATION: signature });
        layers.push(layer_json);
        let diff_ids: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
        let config_bytes = canonical_json(&json!({
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .into_bytes();
        let config = Descriptor::of(media::CONFIG, &config_bytes);
        for (d, bytes) in [(&layer, &payload), (&config, &config_bytes)] {
            if !self.blob_exists(&d.digest)? {
                self.upload_blob_bytes(bytes, d)?;
            }
        }
        let manifest = canonical_json(&json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": config.to_json(),
            "layers": layers,
        }));
        self.put_manifest_bytes(&tag, media::MANIFEST, manifest.as_bytes())?;
        Ok(tag)
    }

    /// The layers of the signature manifest at `tag` (none when there is none yet).
    /// Only well-formed layer descriptors of cosign's payload type are kept: the
    /// registry's answer is not trusted further than that.
    fn signature_layers(&self, tag: &str) -> Result<Vec<serde_json::Value>> {
        let Some(bytes) = self.manifest_bytes_as(tag, media::MANIFEST)? else {
            return Ok(Vec::new());
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(v["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| {
                l["mediaType"] == media::COSIGN_PAYLOAD
                    && l["digest"].as_str().is_some_and(crate::is_digest)
                    && l["size"].is_u64()
            })
            .take(64)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_pkcs8_p256_are_refused_without_echoing_them() {
        for bad in [
            &b"not a key at all"[..],
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e = SigningKey::from_pem(bad).unwrap_err();
            assert!(!e.to_string().contains("AAAA") && !e.to_string().contains("!!!!"));
            assert_eq!(e.kind().exit_code(), 2);
        }
    }

    #[test]
    fn the_payload_and_tag_are_cosigns() {
        let p = payload("r.example/app", "sha256:ab");
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            v["critical"]["image"]["docker-manifest-digest"],
            "sha256:ab"
        );
        assert_eq!(v["critical"]["type"], "cosign container image signature");
        assert_eq!(signature_tag("sha256:ab"), "sha256-ab.sig");
    }
}
