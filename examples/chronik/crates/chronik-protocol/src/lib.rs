//! The Kafka wire protocol, as far as Chronik's example needs it: ApiVersions v0.
//!
//! Every message is framed by a big-endian `i32` length.

use chronik_common::{Error, Result};
use std::io::{Read, Write};

/// Kafka's API key of ApiVersions.
pub const API_VERSIONS: i16 = 18;

/// One supported API and its version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API key.
    pub api_key: i16,
    /// Lowest version served.
    pub min_version: i16,
    /// Highest version served.
    pub max_version: i16,
}

/// An ApiVersions v0 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsRequest {
    /// Echoed back by the server.
    pub correlation_id: i32,
    /// Who is asking.
    pub client_id: Option<String>,
}

/// An ApiVersions v0 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsResponse {
    /// The request's correlation id.
    pub correlation_id: i32,
    /// 0 on success.
    pub error_code: i16,
    /// APIs the server supports.
    pub apis: Vec<ApiRange>,
}

impl ApiVersionsRequest {
    /// The frame body (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&API_VERSIONS.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&self.correlation_id.to_be_bytes());
        match &self.client_id {
            Some(id) => {
                b.extend_from_slice(&(id.len() as i16).to_be_bytes());
                b.extend_from_slice(id.as_bytes());
            }
            None => b.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        b
    }

    /// Decodes a frame body.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let mut r = Cursor(body);
        let key = r.i16()?;
        if key != API_VERSIONS {
            return Err(Error::Protocol(format!("unsupported api key {key}")));
        }
        let _version = r.i16()?;
        let correlation_id = r.i32()?;
        let len = r.i16()?;
        let client_id = if len < 0 {
            None
        } else {
            let raw = r.take(len as usize)?;
            Some(String::from_utf8_lossy(raw).into_owned())
        };
        Ok(Self { correlation_id, client_id })
    }
}

impl ApiVersionsResponse {
    /// The frame body (without the length prefix).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.correlation_id.to_be_bytes());
        b.extend_from_slice(&self.error_code.to_be_bytes());
        b.extend_from_slice(&(self.apis.len() as i32).to_be_bytes());
        for a in &self.apis {
            for v in [a.api_key, a.min_version, a.max_version] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    /// Decodes a frame body.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let mut r = Cursor(body);
        let correlation_id = r.i32()?;
        let error_code = r.i16()?;
        let n = r.i32()?;
        let mut apis = Vec::new();
        for _ in 0..n.max(0) {
            apis.push(ApiRange { api_key: r.i16()?, min_version: r.i16()?, max_version: r.i16()? });
        }
        Ok(Self { correlation_id, error_code, apis })
    }
}

/// Writes one length-prefixed frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> Result<()> {
    w.write_all(&(body.len() as i32).to_be_bytes())?;
    w.write_all(body)?;
    Ok(w.flush()?)
}

/// Reads one length-prefixed frame (at most 1 MiB).
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=1 << 20).contains(&len) {
        return Err(Error::Protocol(format!("bad frame length {len}")));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Protocol("truncated message".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let req = ApiVersionsRequest { correlation_id: 7, client_id: Some("cli".into()) };
        assert_eq!(ApiVersionsRequest::decode(&req.encode()).unwrap(), req);
    }

    #[test]
    fn response_round_trips() {
        let resp = ApiVersionsResponse {
            correlation_id: 7,
            error_code: 0,
            apis: vec![ApiRange { api_key: 18, min_version: 0, max_version: 0 }],
        };
        assert_eq!(ApiVersionsResponse::decode(&resp.encode()).unwrap(), resp);
    }
}
