//! Workspace-relative paths as key data: any bytes a file name may hold, written as
//! text that stays readable for UTF-8 names and is still exact for the others.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// A path relative to the workspace root, with `/` separators. Bytes that are not
/// UTF-8, and `%` itself, are written `%XX`, so the text maps back to exactly one
/// byte string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelPath(String);

impl RelPath {
    /// The relative path `p` (its components joined with `/`).
    pub fn new(p: &Path) -> Self {
        let mut out = String::new();
        for (i, c) in p.components().enumerate() {
            if i > 0 {
                out.push('/');
            }
            escape(&kiln_fs::os_bytes(c.as_os_str()), &mut out);
        }
        RelPath(out)
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn escape(mut bytes: &[u8], out: &mut String) {
    while !bytes.is_empty() {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (ok, bad) = bytes.split_at(e.valid_up_to());
                (std::str::from_utf8(ok).expect("valid prefix"), bad)
            }
        };
        out.push_str(&valid.replace('%', "%25"));
        if let Some((b, tail)) = rest.split_first() {
            out.push_str(&format!("%{b:02X}"));
            bytes = tail;
        } else {
            bytes = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_exact_and_distinct() {
        use std::os::unix::ffi::OsStrExt;
        let raw = Path::new(std::ffi::OsStr::from_bytes(b"data-\xff.bin"));
        assert_eq!(RelPath::new(raw).as_str(), "data-%FF.bin");
        assert_eq!(
            RelPath::new(Path::new("data-%FF.bin")).as_str(),
            "data-%25FF.bin"
        );
        assert_eq!(RelPath::new(Path::new("a/b.rs")).as_str(), "a/b.rs");
    }
}
