//! `chronik-cli ping HOST:PORT`: sends Kafka ApiVersions and prints the answer.

use chronik_protocol::{ApiVersionsRequest, ApiVersionsResponse};
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--version" | "-V"] => println!("chronik-cli {}", chronik_common::VERSION),
        ["ping", addr] => {
            if let Err(e) = ping(addr) {
                eprintln!("chronik-cli: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: chronik-cli ping HOST:PORT | --version");
            std::process::exit(2);
        }
    }
}

fn ping(addr: &str) -> chronik_common::Result<()> {
    let addr = chronik_common::parse_addr(addr)?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let req = ApiVersionsRequest { correlation_id: 42, client_id: Some("chronik-cli".into()) };
    chronik_protocol::write_frame(&mut stream, &req.encode())?;
    let resp = ApiVersionsResponse::decode(&chronik_protocol::read_frame(&mut stream)?)?;
    println!("ApiVersions from {addr}: correlation_id={} error_code={}", resp.correlation_id, resp.error_code);
    for api in resp.apis {
        println!("  api_key={} versions={}..={}", api.api_key, api.min_version, api.max_version);
    }
    Ok(())
}
