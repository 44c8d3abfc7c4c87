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
    if head.get(0..4)? != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(head.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(head.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(head.get(o..o + 8)?.try_into().ok()?));
    let arch = match u16_at(18)? {
        62 => "amd64".to_string(),
        183 => "arm64".to_string(),
        n => format!("machine-{n}"),
    };
    let (phoff, phentsize, phnum) = (
        u64_at(32)? as usize,
        u16_at(54)? as usize,
        u16_at(56)? as usize,
    );
    const PT_INTERP: u32 = 3;
    let is_static = (0..phnum).all(|i| u32_at(phoff + i * phentsize) != Some(PT_INTERP));
    Some(ElfInfo { arch, is_static })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_binary_is_a_host_elf() {
        let me = std::env::current_exe().unwrap();
        let info = super::elf_info(&me).expect("test binary is ELF");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(info.arch, "amd64");
        }
    }

    #[test]
    fn a_text_file_is_not_elf() {
        assert!(super::elf_info(std::path::Path::new("Cargo.toml")).is_none());
    }
}
