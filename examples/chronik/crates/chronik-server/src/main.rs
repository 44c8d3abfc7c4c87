//! `chronik-server --bind-addr 0.0.0.0 --data-dir /data standalone`
//!
//! Serves Kafka ApiVersions on the Kafka port (9092) and `/health` and `/metrics`
//! over HTTP on the admin port (9093).

use chronik_protocol::{ApiRange, ApiVersionsRequest, ApiVersionsResponse, API_VERSIONS};
use chronik_storage::Segment;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

struct Args {
    bind_addr: String,
    data_dir: PathBuf,
    kafka_port: u16,
    http_port: u16,
}

const USAGE: &str = "usage: chronik-server [--bind-addr ADDR] [--data-dir DIR] \
[--kafka-port PORT] [--http-port PORT] standalone | --version";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind_addr: "0.0.0.0".into(),
        data_dir: PathBuf::from("/data"),
        kafka_port: 9092,
        http_port: 9093,
    };
    let mut mode = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--version" | "-V" => {
                println!("chronik-server {}", chronik_common::VERSION);
                std::process::exit(0);
            }
            "--bind-addr" => args.bind_addr = value()?,
            "--data-dir" => args.data_dir = PathBuf::from(value()?),
            "--kafka-port" => args.kafka_port = value()?.parse().map_err(|e| format!("{e}"))?,
            "--http-port" => args.http_port = value()?.parse().map_err(|e| format!("{e}"))?,
            "standalone" => mode = Some(a),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    mode.ok_or_else(|| USAGE.to_string())?;
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let mut meta = Segment::open(&args.data_dir, "server").unwrap_or_else(|e| {
        eprintln!("cannot open data dir {}: {e}", args.data_dir.display());
        std::process::exit(1)
    });
    meta.append(format!("started {}", chronik_common::VERSION).as_bytes())
        .expect("write to data dir");
    let requests = Arc::new(AtomicU64::new(0));
    let kafka = TcpListener::bind((args.bind_addr.as_str(), args.kafka_port)).expect("bind kafka port");
    let http = TcpListener::bind((args.bind_addr.as_str(), args.http_port)).expect("bind http port");
    println!(
        "chronik-server {} listening: kafka {} http {} data {}",
        chronik_common::VERSION,
        kafka.local_addr().unwrap(),
        http.local_addr().unwrap(),
        meta.path().display()
    );
    let counter = requests.clone();
    thread::spawn(move || serve_http(http, counter));
    for stream in kafka.incoming().flatten() {
        let counter = requests.clone();
        thread::spawn(move || serve_kafka(stream, &counter));
    }
}

fn serve_kafka(mut stream: TcpStream, requests: &AtomicU64) {
    while let Ok(body) = chronik_protocol::read_frame(&mut stream) {
        requests.fetch_add(1, Ordering::Relaxed);
        let Ok(req) = ApiVersionsRequest::decode(&body) else { return };
        let resp = ApiVersionsResponse {
            correlation_id: req.correlation_id,
            error_code: 0,
            apis: vec![ApiRange { api_key: API_VERSIONS, min_version: 0, max_version: 0 }],
        };
        if chronik_protocol::write_frame(&mut stream, &resp.encode()).is_err() {
            return;
        }
    }
}

fn serve_http(listener: TcpListener, requests: Arc<AtomicU64>) {
    for mut stream in listener.incoming().flatten() {
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/health" => ("200 OK", "ok\n".to_string()),
            "/metrics" => (
                "200 OK",
                format!("chronik_kafka_requests_total {}\n", requests.load(Ordering::Relaxed)),
            ),
            _ => ("404 Not Found", "not found\n".to_string()),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
