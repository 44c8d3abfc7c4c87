//! CRC32C over record bytes, computed by a small C routine.

extern "C" {
    fn chronik_crc32c(data: *const u8, len: usize) -> u32;
}

/// CRC32C (Castagnoli) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    // SAFETY: the C routine reads exactly `len` bytes from `data`.
    unsafe { chronik_crc32c(data.as_ptr(), data.len()) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vector() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
