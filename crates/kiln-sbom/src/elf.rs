//! The smallest ELF64 relocatable object a linker takes: one data section.
//!
//! Sections: the null section, the data (`SHT_PROGBITS`, not `SHF_ALLOC`: linkers keep
//! non-allocated sections through `--gc-sections` and `--strip-all`, and it costs no
//! memory at run time), an empty symbol table with its string table, and the section
//! name table.

/// `e_machine` for a Linux target triple's architecture.
pub(crate) fn machine(triple: &str) -> Option<u16> {
    if !triple.contains("-linux") {
        return None;
    }
    match triple.split('-').next()? {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        "riscv64gc" | "riscv64" => Some(243),
        _ => None,
    }
}

const EHDR: usize = 64;
const SHDR: usize = 64;

/// The object's bytes.
pub(crate) fn object_with_section(machine: u16, name: &str, data: &[u8]) -> Vec<u8> {
    // Section names: "\0" + name + "\0.symtab\0.strtab\0.shstrtab\0".
    let mut shstrtab = vec![0u8];
    let name_at = |n: &str, t: &mut Vec<u8>| {
        let at = t.len() as u32;
        t.extend_from_slice(n.as_bytes());
        t.push(0);
        at
    };
    let data_name = name_at(name, &mut shstrtab);
    let symtab_name = name_at(".symtab", &mut shstrtab);
    let strtab_name = name_at(".strtab", &mut shstrtab);
    let shstrtab_name = name_at(".shstrtab", &mut shstrtab);
    let symtab = vec![0u8; 24]; // the null symbol
    let strtab = vec![0u8];

    let align8 = |n: usize| n.div_ceil(8) * 8;
    let data_off = EHDR;
    let symtab_off = align8(data_off + data.len());
    let strtab_off = symtab_off + symtab.len();
    let shstrtab_off = strtab_off + strtab.len();
    let shoff = align8(shstrtab_off + shstrtab.len());

    let mut out = Vec::with_capacity(shoff + 5 * SHDR);
    // e_ident: ELF, 64-bit, little-endian, version 1, System V ABI.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
    out.extend_from_slice(&(shoff as u64).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&(EHDR as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // e_phentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
    out.extend_from_slice(&(SHDR as u16).to_le_bytes());
    out.extend_from_slice(&5u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&4u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(out.len(), EHDR);

    out.extend_from_slice(data);
    out.resize(symtab_off, 0);
    out.extend_from_slice(&symtab);
    out.extend_from_slice(&strtab);
    out.extend_from_slice(&shstrtab);
    out.resize(shoff, 0);

    // One section header: name, type, where and how long, link, info, alignment,
    // entry size (flags and address are 0 for these sections).
    struct Shdr {
        name: u32,
        kind: u32,
        offset: usize,
        size: usize,
        link: u32,
        info: u32,
        align: u64,
        entsize: u64,
    }
    let sections = [
        Shdr {
            name: 0,
            kind: 0,
            offset: 0,
            size: 0,
            link: 0,
            info: 0,
            align: 0,
            entsize: 0,
        },
        // SHT_PROGBITS
        Shdr {
            name: data_name,
            kind: 1,
            offset: data_off,
            size: data.len(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
        // SHT_SYMTAB: linked to .strtab (3); info = index of the first non-local symbol.
        Shdr {
            name: symtab_name,
            kind: 2,
            offset: symtab_off,
            size: symtab.len(),
            link: 3,
            info: 1,
            align: 8,
            entsize: 24,
        },
        // SHT_STRTAB
        Shdr {
            name: strtab_name,
            kind: 3,
            offset: strtab_off,
            size: strtab.len(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
        Shdr {
            name: shstrtab_name,
            kind: 3,
            offset: shstrtab_off,
            size: shstrtab.len(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
    ];
    for h in sections {
        out.extend_from_slice(&h.name.to_le_bytes());
        out.extend_from_slice(&h.kind.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // sh_flags
        out.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
        out.extend_from_slice(&(h.offset as u64).to_le_bytes());
        out.extend_from_slice(&(h.size as u64).to_le_bytes());
        out.extend_from_slice(&h.link.to_le_bytes());
        out.extend_from_slice(&h.info.to_le_bytes());
        out.extend_from_slice(&h.align.to_le_bytes());
        out.extend_from_slice(&h.entsize.to_le_bytes());
    }
    out
}

/// The content of the section called `name` in a 64-bit little-endian ELF file.
pub(crate) fn section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(0..6)? != [0x7f, b'E', b'L', b'F', 2, 1] {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let range = |i: usize| -> Option<(usize, usize)> {
        let h = header(i)?;
        let off = usize::try_from(u64_at(h + 24)?).ok()?;
        let size = usize::try_from(u64_at(h + 32)?).ok()?;
        Some((off, off.checked_add(size)?))
    };
    let (names_from, names_to) = range(shstrndx)?;
    let names = elf.get(names_from..names_to)?;
    (0..shnum).find_map(|i| {
        let at = u32_at(header(i)?)? as usize;
        let end = at + names.get(at..)?.iter().position(|b| *b == 0)?;
        if &names[at..end] != name.as_bytes() {
            return None;
        }
        let (from, to) = range(i)?;
        elf.get(from..to)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_round_trips_and_garbage_is_none() {
        let obj = object_with_section(62, ".dep-v0", b"hello");
        assert_eq!(section(&obj, ".dep-v0"), Some(&b"hello"[..]));
        assert_eq!(section(&obj, ".nope"), None);
        assert_eq!(section(b"not an elf file at all", ".dep-v0"), None);
        assert_eq!(section(&obj[..70], ".dep-v0"), None, "truncated");
        assert_eq!(machine("aarch64-unknown-linux-musl"), Some(183));
        assert_eq!(machine("x86_64-apple-darwin"), None);
    }
}
