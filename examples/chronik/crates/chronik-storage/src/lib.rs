//! Append-only segment files: each record is `[len: u32][crc32c: u32][bytes]`.

use chronik_common::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One append-only segment file under a data directory.
pub struct Segment {
    path: PathBuf,
    file: File,
}

impl Segment {
    /// Opens (creating it and the directory if needed) `<dir>/<name>.log`.
    pub fn open(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.log"));
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        Ok(Self { path, file })
    }

    /// Appends one record and syncs it to disk.
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(record.len() + 8);
        buf.extend_from_slice(&(record.len() as u32).to_be_bytes());
        buf.extend_from_slice(&chronik_checksum::crc32c(record).to_be_bytes());
        buf.extend_from_slice(record);
        self.file.write_all(&buf)?;
        Ok(self.file.sync_data()?)
    }

    /// Reads every record back, checking each checksum.
    pub fn records(&self) -> Result<Vec<Vec<u8>>> {
        let mut data = Vec::new();
        File::open(&self.path)?.read_to_end(&mut data)?;
        let mut out = Vec::new();
        let mut rest = &data[..];
        while rest.len() >= 8 {
            let len = u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize;
            let crc = u32::from_be_bytes(rest[4..8].try_into().unwrap());
            let record = rest
                .get(8..8 + len)
                .ok_or_else(|| Error::Corrupt(format!("{}: truncated record", self.path.display())))?;
            if chronik_checksum::crc32c(record) != crc {
                return Err(Error::Corrupt(format!("{}: checksum mismatch", self.path.display())));
            }
            out.push(record.to_vec());
            rest = &rest[8 + len..];
        }
        Ok(out)
    }

    /// Where the segment lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn appends_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("chronik-storage-{}", std::process::id()));
        let mut seg = super::Segment::open(&dir, "t").unwrap();
        seg.append(b"hello").unwrap();
        seg.append(b"world").unwrap();
        assert_eq!(seg.records().unwrap(), vec![b"hello".to_vec(), b"world".to_vec()]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
