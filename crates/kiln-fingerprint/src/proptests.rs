//! Property tests of the key encoding: different inputs never encode the same, and
//! the encoding depends neither on insertion order nor on how structs declare fields.

use crate::{canonical_encoding, InputId, InputValue, Inputs, RelPath};
use proptest::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn id() -> impl Strategy<Value = InputId> {
    prop_oneof![
        Just(InputId::Toolchain),
        Just(InputId::Features),
        ".{0,12}".prop_map(|name| InputId::Env { name }),
        ".{0,12}".prop_map(|name| InputId::KilnEnv { name }),
        (".{0,8}", ".{0,8}").prop_map(|(name, version)| InputId::Dep { name, version }),
        prop::collection::vec(any::<u8>(), 1..12).prop_map(|b| InputId::File {
            path: RelPath::new(&bytes_path(b))
        }),
    ]
}

#[cfg(unix)]
fn bytes_path(b: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let b: Vec<u8> = b
        .into_iter()
        .map(|c| if c == b'/' || c == 0 { b'_' } else { c })
        .collect();
    PathBuf::from(std::ffi::OsStr::from_bytes(&b))
}

#[cfg(not(unix))]
fn bytes_path(b: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&b).replace('/', "_"))
}

fn value() -> impl Strategy<Value = InputValue> {
    prop_oneof![
        Just(InputValue::Missing),
        ".{0,16}".prop_map(|value| InputValue::Text { value }),
        "[0-9a-f]{0,8}".prop_map(|sha256| InputValue::Digest { sha256 }),
        (
            prop::collection::vec(".{0,6}", 0..4),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(features, all, no_default)| InputValue::Features {
                features,
                all,
                no_default
            }),
        (".{0,6}", ".{0,6}", prop::collection::vec(".{0,4}", 0..3)).prop_map(
            |(source, checksum, features)| InputValue::Dep {
                source,
                checksum,
                features
            }
        ),
    ]
}

fn inputs() -> impl Strategy<Value = Vec<(InputId, InputValue)>> {
    prop::collection::btree_map(id(), value(), 0..8)
        .prop_map(|m: BTreeMap<_, _>| m.into_iter().collect())
}

fn build(list: &[(InputId, InputValue)]) -> Inputs {
    let mut i = Inputs::new();
    for (k, v) in list {
        i.add(k.clone(), v.clone());
    }
    i
}

proptest! {
    #[test]
    fn different_inputs_never_encode_equal(a in inputs(), b in inputs()) {
        let (ia, ib) = (build(&a), build(&b));
        prop_assert_eq!(a == b, ia.encoding() == ib.encoding());
        prop_assert_eq!(a == b, ia.key() == ib.key());
    }

    #[test]
    fn insertion_order_does_not_matter(a in inputs(), seed in any::<u64>()) {
        let forward = build(&a);
        let mut list = a;
        // A deterministic shuffle from the seed.
        for i in (1..list.len()).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            list.swap(i, j);
        }
        prop_assert_eq!(forward.key(), build(&list).key());
    }

    #[test]
    fn struct_field_order_does_not_matter(x in ".{0,10}", y in ".{0,10}", n in any::<u32>()) {
        #[derive(Serialize)]
        struct Declared { alpha: String, beta: String, count: u32 }
        #[derive(Serialize)]
        struct Reordered { count: u32, beta: String, alpha: String }
        let a = Declared { alpha: x.clone(), beta: y.clone(), count: n };
        let b = Reordered { count: n, beta: y, alpha: x };
        prop_assert_eq!(canonical_encoding(&a), canonical_encoding(&b));
    }

    #[test]
    fn strings_cannot_imitate_structure(parts in prop::collection::vec(".{0,6}", 0..5)) {
        let joined: String = parts.concat();
        prop_assert_ne!(canonical_encoding(&joined), canonical_encoding(&parts));
    }

    #[test]
    fn serialized_entries_keep_their_key(a in inputs()) {
        let i = build(&a);
        let back: Inputs = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        prop_assert_eq!(i.key(), back.key());
    }
}
