//! The named inputs of a key, and the key itself.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the key scheme; bump it whenever the set or meaning of inputs changes.
pub const KEY_VERSION: u32 = 1;

/// Named inputs of one cache key, sorted by name. Values are digests or short strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs(pub BTreeMap<String, String>);

impl Inputs {
    /// Starts a list holding the key version.
    pub fn new() -> Self {
        let mut i = Self::default();
        i.add("kiln", KEY_VERSION.to_string());
        i
    }

    /// Adds (or replaces) one input.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The cache key: SHA-256 over every `name=value` line, in name order.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\n");
        }
        kiln_fs::hex(&h.finalize())
    }
}

/// The inputs that differ between an old and a new list, as `(name, what happened)`.
pub fn diff(old: &Inputs, new: &Inputs) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (k, v) in &new.0 {
        match old.0.get(k) {
            None => out.push((k.clone(), "added")),
            Some(o) if o != v => out.push((k.clone(), "changed")),
            Some(_) => {}
        }
    }
    for k in old.0.keys() {
        if !new.0.contains_key(k) {
            out.push((k.clone(), "removed"));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_every_input_and_not_on_insertion_order() {
        let mut a = Inputs::new();
        a.add("file:x", "1");
        a.add("rustc", "r");
        let mut b = Inputs::new();
        b.add("rustc", "r");
        b.add("file:x", "1");
        assert_eq!(a.key(), b.key());
        b.add("file:x", "2");
        assert_ne!(a.key(), b.key());
        assert_eq!(diff(&a, &b), vec![("file:x".to_string(), "changed")]);
    }
}
