//! Types shared by every Chronik crate.

use std::fmt;

/// The version every Chronik binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors a Chronik component can report.
#[derive(Debug)]
pub enum Error {
    /// An I/O failure.
    Io(std::io::Error),
    /// A malformed request or record.
    Protocol(String),
    /// Stored data failed its checksum.
    Corrupt(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::Corrupt(m) => write!(f, "corrupt data: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result type of Chronik components.
pub type Result<T> = std::result::Result<T, Error>;

/// Parses `HOST:PORT`, giving a protocol error that names the bad value.
pub fn parse_addr(s: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| Error::Protocol(format!("bad address `{s}`: {e}")))?
        .next()
        .ok_or_else(|| Error::Protocol(format!("address `{s}` resolves to nothing")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_loopback() {
        assert_eq!(super::parse_addr("127.0.0.1:9092").unwrap().port(), 9092);
    }
}
