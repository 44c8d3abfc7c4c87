//! The typed inputs of a key, the key itself, and what changed between two lists.

use crate::canonical::encode;
pub use kiln_schema::{Change, InputId, InputValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the key scheme; bump it whenever the set or meaning of inputs changes.
/// 3: the audit section and the allocator are inputs of their own kinds.
pub const KEY_VERSION: u32 = 3;

/// The value of content: its digest.
pub fn digest(bytes: &[u8]) -> InputValue {
    InputValue::Digest {
        sha256: kiln_fs::sha256_hex(bytes),
    }
}

/// One input: what it is and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// What it is.
    pub id: InputId,
    /// Its value.
    pub value: InputValue,
}

/// The inputs of one cache key, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Input>", into = "Vec<Input>")]
pub struct Inputs(BTreeMap<InputId, InputValue>);

impl From<Vec<Input>> for Inputs {
    fn from(list: Vec<Input>) -> Self {
        Inputs(list.into_iter().map(|i| (i.id, i.value)).collect())
    }
}

impl From<Inputs> for Vec<Input> {
    fn from(inputs: Inputs) -> Self {
        inputs
            .0
            .into_iter()
            .map(|(id, value)| Input { id, value })
            .collect()
    }
}

impl Inputs {
    /// Starts a list holding the key version.
    pub fn new() -> Self {
        let mut i = Self::default();
        i.add(InputId::Scheme, InputValue::Number { value: KEY_VERSION });
        i
    }

    /// Adds (or replaces) one input.
    pub fn add(&mut self, id: InputId, value: InputValue) {
        self.0.insert(id, value);
    }

    /// The value of one input.
    pub fn get(&self, id: &InputId) -> Option<&InputValue> {
        self.0.get(id)
    }

    /// Every input, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&InputId, &InputValue)> {
        self.0.iter()
    }

    /// How many inputs there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical bytes the key hashes: every input's id and value encoded
    /// canonically, in the order of the encoded ids (not of any Rust declaration).
    pub fn encoding(&self) -> Vec<u8> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .0
            .iter()
            .map(|(id, v)| (encode(id), encode(v)))
            .collect();
        entries.sort();
        let mut out = b"kiln-key\0".to_vec();
        out.extend((entries.len() as u64).to_be_bytes());
        for (id, v) in entries {
            out.extend((id.len() as u64).to_be_bytes());
            out.extend(id);
            out.extend((v.len() as u64).to_be_bytes());
            out.extend(v);
        }
        out
    }

    /// The cache key: hex SHA-256 of [`Inputs::encoding`].
    pub fn key(&self) -> String {
        kiln_fs::hex(&Sha256::digest(self.encoding()))
    }
}

/// The inputs that differ between an old and a new list, in id order.
pub fn diff(old: &Inputs, new: &Inputs) -> Vec<Change> {
    let mut ids: Vec<&InputId> = old.0.keys().chain(new.0.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter(|id| old.0.get(*id) != new.0.get(*id))
        .map(|id| Change {
            id: id.clone(),
            old: old.0.get(id).cloned(),
            new: new.0.get(id).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_schema::{RelPath, Setting};

    fn file(path: &str) -> InputId {
        InputId::File {
            path: RelPath::new(std::path::Path::new(path)),
        }
    }

    #[test]
    fn key_depends_on_every_input_and_not_on_insertion_order() {
        let mut a = Inputs::new();
        a.add(file("x"), crate::digest(b"1"));
        a.add(InputId::Toolchain, crate::digest(b"r"));
        let mut b = Inputs::new();
        b.add(InputId::Toolchain, crate::digest(b"r"));
        b.add(file("x"), crate::digest(b"1"));
        assert_eq!(a.key(), b.key());
        b.add(file("x"), crate::digest(b"2"));
        assert_ne!(a.key(), b.key());
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to_string(), "x changed");
    }

    #[test]
    fn a_value_cannot_imitate_two_inputs() {
        let env = |n: &str| InputId::Env { name: n.into() };
        let text = |v: &str| InputValue::Text { value: v.into() };
        let mut one = Inputs::new();
        one.add(env("CFLAGS"), text("-O2\nenv:CXXFLAGS=-O3"));
        let mut two = Inputs::new();
        two.add(env("CFLAGS"), text("-O2"));
        two.add(env("CXXFLAGS"), text("-O3"));
        assert_ne!(one.key(), two.key());
    }

    #[test]
    fn explanations_are_sentences() {
        let o = |to: &str| InputValue::Override {
            from: "clang".into(),
            to: Some(to.into()),
            source: None,
        };
        let id = InputId::Override {
            target: "aarch64-unknown-linux-musl".into(),
            setting: Setting::Linker,
            flag: None,
        };
        let added = Change {
            id: id.clone(),
            old: None,
            new: Some(o("zig")),
        };
        assert_eq!(
            added.to_string(),
            "linker override for aarch64-unknown-linux-musl: clang -> zig"
        );
        let env = Change {
            id: InputId::Env {
                name: "RUSTFLAGS".into(),
            },
            old: Some(crate::digest(b"a")),
            new: Some(crate::digest(b"b")),
        };
        assert_eq!(env.to_string(), "RUSTFLAGS changed");
    }
}
