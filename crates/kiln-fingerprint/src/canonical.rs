//! The canonical encoding keys are hashed from: typed data through serde, written
//! with a type tag and a length before every value and object keys in sorted order.
//!
//! Two different values never encode the same (every field is delimited by its
//! length, so no string can imitate a boundary), and the bytes don't depend on the
//! order fields are declared in a struct or entries inserted in a map.

use serde::Serialize;
use serde_json::Value;

/// The canonical bytes of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let v = serde_json::to_value(value).expect("key inputs serialize to JSON values");
    let mut out = Vec::new();
    write(&v, &mut out);
    out
}

fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.extend([b'b', u8::from(*b)]),
        Value::Number(n) => bytes(b'i', n.to_string().as_bytes(), out),
        Value::String(s) => bytes(b's', s.as_bytes(), out),
        Value::Array(items) => {
            out.push(b'a');
            out.extend((items.len() as u64).to_be_bytes());
            items.iter().for_each(|i| write(i, out));
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'o');
            out.extend((entries.len() as u64).to_be_bytes());
            for (k, v) in entries {
                bytes(b'k', k.as_bytes(), out);
                write(v, out);
            }
        }
    }
}

fn bytes(tag: u8, b: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    out.extend((b.len() as u64).to_be_bytes());
    out.extend(b);
}
