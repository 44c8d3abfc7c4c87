//! Secret key files: created readable by their owner only, never overwritten, and
//! refused when others can read them (as ssh refuses an unprotected private key).

use kiln_diagnostics::{Error, IoContext, Result};
use std::io::{Read, Write};
use std::path::Path;

/// The largest key file kiln reads (keys are a few hundred bytes; PEM a few KiB).
const MAX_KEY_FILE: u64 = 64 << 10;

/// Reads the secret key file at `path`. On Unix a file that its group or others may
/// read is refused: a signing key anyone on the machine can copy signs for them too.
pub fn read_secret_file(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).io_context("open the key file", path)?;
    let meta = file.metadata().io_context("read", path)?;
    if !meta.is_file() {
        return Err(Error::usage(format!(
            "the key `{}` is not a regular file",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::usage(format!(
                "the key file `{}` can be read by other users (mode {:o})",
                path.display(),
                mode & 0o777
            ))
            .hint(format!(
                "run `chmod 600 {}`; a signing key others can read signs for them too",
                path.display()
            )));
        }
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|e| {
            Error::usage(format!("the key file `{}` is not text", path.display())).with_source(e)
        })?;
    Ok(text)
}

/// Writes a new secret key file readable by its owner only; an existing file is an
/// error (a key is never replaced by accident).
pub fn write_secret_file(path: &Path, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::usage(format!(
                "`{}` exists; kiln never overwrites a key",
                path.display()
            ))
            .hint(
                "choose another `--out`, or remove the file first if you mean to replace that key",
            )
        } else {
            Error::io("create", path, e)
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .io_context("write", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_owner_only_never_overwritten_and_refused_when_others_can_read() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("k.secret");
        write_secret_file(&key, "k:abc\n").unwrap();
        assert_eq!(read_secret_file(&key).unwrap(), "k:abc\n");
        let again = write_secret_file(&key, "other").unwrap_err();
        assert!(again.to_string().contains("never overwrites"), "{again}");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "k:abc\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_secret_file(&key).unwrap_err();
            assert!(e.hints()[0].contains("chmod 600"), "{e}");
        }
    }
}
