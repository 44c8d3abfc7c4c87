//! The CA bundle for scratch images: Mozilla's roots as shipped by the
//! `webpki-root-certs` crate, PEM-encoded. Taken from a pinned crate rather than the
//! build machine so the layer is the same on every host.

use base64::Engine;

/// Every root certificate as one PEM file.
pub(crate) fn ca_bundle() -> Vec<u8> {
    let mut out = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundle_holds_many_pem_certificates() {
        let pem = String::from_utf8(super::ca_bundle()).unwrap();
        assert!(pem.matches("BEGIN CERTIFICATE").count() > 100);
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }
}
