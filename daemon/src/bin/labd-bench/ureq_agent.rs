//! A tiny blocking HTTP GET over std, so the benches need no client crate.

use std::io::{Read, Write};
use std::net::TcpStream;

pub struct Agent;

pub fn new() -> Agent {
    Agent
}

/// Connects to `url`'s host and sends a GET for its path.
fn request(url: &str) -> anyhow::Result<TcpStream> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("not http: {url}"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = TcpStream::connect(host)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    Ok(s)
}

impl Agent {
    pub fn get(&self, url: &str) -> anyhow::Result<String> {
        let mut s = request(url)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("bad HTTP answer"))?;
        if !head.starts_with("HTTP/1.1 200") {
            anyhow::bail!("{url}: {}", head.lines().next().unwrap_or(""));
        }
        Ok(body.to_string())
    }

    /// GETs `url` and reads the answer as it streams, keeping none of it; answers the bytes read.
    pub fn drain(&self, url: &str) -> anyhow::Result<u64> {
        let mut s = request(url)?;
        let mut buf = vec![0u8; 1 << 16];
        let n = s.read(&mut buf)?;
        if !buf[..n].starts_with(b"HTTP/1.1 200") {
            anyhow::bail!("{url}: {}", String::from_utf8_lossy(&buf[..n.min(200)]));
        }
        let mut total = n as u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }
}
