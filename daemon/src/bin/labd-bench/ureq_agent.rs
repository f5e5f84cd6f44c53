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

/// One kept-alive connection, as a browser or a client library keeps one: requests one after another on the
/// same socket, each answer read by its Content-Length.
pub struct Conn {
    stream: std::io::BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub fn open(base: &str) -> anyhow::Result<Conn> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("not http: {base}"))?;
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        let s = TcpStream::connect(&host)?;
        s.set_nodelay(true)?;
        Ok(Conn {
            stream: std::io::BufReader::new(s),
            host,
        })
    }

    /// GETs `path` (from the root, e.g. `/api/v1/health`): the status and the body's bytes.
    pub fn get(&mut self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        use std::io::BufRead;
        write!(
            self.stream.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.host
        )?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad status line {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or_else(|| anyhow::anyhow!("{path}: no Content-Length"))?;
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body)?;
        Ok((status, body))
    }
}
