//! Just enough ELF parsing to tell a binary's architecture and whether it is static,
//! so kiln can refuse to ship a Mach-O or dynamically linked file as a Linux artifact.

use std::io::Read;
use std::path::Path;

/// What the ELF header says about a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// The architecture in OCI spelling (`amd64`, `arm64`), or `machine-<n>`.
    pub arch: String,
    /// True when there is no program interpreter (`PT_INTERP`): a static binary.
    pub is_static: bool,
}

/// Reads the ELF header of `path`; `None` when it is not a 64-bit little-endian ELF file.
pub fn elf_info(path: &Path) -> Option<ElfInfo> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 16)
        .read_to_end(&mut head)
        .ok()?;
    parse(&head)
}

/// The header fields of an ELF image's first bytes; `None` for anything else,
/// truncated or malformed input included (never a panic: the store is outside input).
fn parse(head: &[u8]) -> Option<ElfInfo> {
    if head.get(0..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let at = |o: usize, n: usize| head.get(o..o.checked_add(n)?);
    let u16_at = |o: usize| Some(u16::from_le_bytes(at(o, 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(at(o, 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(at(o, 8)?.try_into().ok()?));
    let arch = match u16_at(18)? {
        62 => "amd64".to_string(),
        183 => "arm64".to_string(),
        n => format!("machine-{n}"),
    };
    let (phoff, phentsize, phnum) = (
        usize::try_from(u64_at(32)?).ok()?,
        u16_at(54)? as usize,
        u16_at(56)? as usize,
    );
    const PT_INTERP: u32 = 3;
    let mut is_static = true;
    for i in 0..phnum {
        let offset = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))?;
        // A program header table beyond what was read can't be checked: not an ELF
        // kiln can vouch for.
        if u32_at(offset)? == PT_INTERP {
            is_static = false;
        }
    }
    Some(ElfInfo { arch, is_static })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_binary_is_a_host_elf() {
        let me = std::env::current_exe().unwrap();
        let info = super::elf_info(&me).expect("test binary is ELF");
        // The host's architecture in OCI spelling, on any host kiln supports.
        let want = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(info.arch, want);
    }

    #[test]
    fn truncated_and_hostile_headers_never_panic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for len in 0..200.min(me.len()) {
            let _ = super::parse(&me[..len]);
        }
        let mut huge = me[..64].to_vec();
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        huge[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(super::parse(&huge).is_none());
        assert!(super::parse(b"\x7fELF\x02").is_none());
    }

    #[test]
    fn a_text_file_is_not_elf() {
        assert!(super::elf_info(std::path::Path::new("Cargo.toml")).is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_headers_never_panic(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = super::parse(&bytes);
            // With a valid magic, the rest is what gets parsed.
            if bytes.len() >= 6 {
                bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
                let _ = super::parse(&bytes);
            }
        }
    }
}
