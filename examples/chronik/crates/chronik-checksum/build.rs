fn main() {
    println!("cargo:rerun-if-changed=csrc/crc32c.c");
    cc::Build::new().file("csrc/crc32c.c").compile("chronik_crc32c");
}
