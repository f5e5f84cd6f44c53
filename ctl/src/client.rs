//! The HTTP client of labd's API: JSON in and out, errors carrying the daemon's own message.

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(addr: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        Client {
            base: addr.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// The answer's body as text, or the error labd gave (its message) or the reason it could not be asked.
    fn answer_text(
        &self,
        what: &str,
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String> {
        let mut res = res.map_err(|e| {
            anyhow!(
                "cannot reach labd at {} ({e}); is it running? (--addr / LABD_ADDR)",
                self.base
            )
        })?;
        let status = res.status();
        let text = res
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        if !status.is_success() {
            let msg = serde_json::from_str::<labd_schemas::api::ApiError>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            bail!("{what}: {status}: {msg}");
        }
        Ok(text)
    }

    fn answer<T: DeserializeOwned>(
        &self,
        what: &str,
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let text = self.answer_text(what, res)?;
        serde_json::from_str(&text).with_context(|| format!("{what}: unexpected answer from labd"))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        let mut req = self.auth(self.agent.get(self.url(path)));
        for (k, v) in query {
            req = req.query(*k, v);
        }
        self.answer(&format!("GET {path}"), req.call())
    }

    /// GET an API path whose answer is not JSON (CSV, Parquet downloads); errors keep the daemon's message.
    /// GETs `path` and answers the body as text.
    pub fn get_text(&self, path: &str, query: &[(&str, String)]) -> Result<String> {
        let mut out = Vec::new();
        self.download(path, query, &mut out)?;
        String::from_utf8(out).with_context(|| format!("GET {path}: not UTF-8"))
    }

    /// GETs `path` and copies the answer into `out` as it arrives (exports can be bigger than memory);
    /// answers the number of bytes.
    pub fn download(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let mut req = self.auth(self.agent.get(self.url(path)));
        for (k, v) in query {
            req = req.query(*k, v);
        }
        let mut res = req.call().map_err(|e| {
            anyhow!(
                "cannot reach labd at {} ({e}); is it running? (--addr / LABD_ADDR)",
                self.base
            )
        })?;
        let status = res.status();
        let mut body = res.body_mut().with_config().limit(u64::MAX).reader();
        if !status.is_success() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut body, &mut text)
                .with_context(|| format!("GET {path}: reading the answer"))?;
            let msg = serde_json::from_str::<labd_schemas::api::ApiError>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            bail!("GET {path}: {status}: {msg}");
        }
        std::io::copy(&mut body, out).with_context(|| format!("GET {path}: reading the answer"))
    }

    /// Downloads an export into `path`: written beside it first and renamed when complete, so an interrupted
    /// export never leaves a file that looks whole.
    pub fn download_to(&self, api: &str, q: &[(&str, String)], path: &Path) -> Result<u64> {
        let name = path
            .file_name()
            .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
        let partial = path.with_file_name(format!(".{name}.partial"));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?,
        );
        let n = self.download(api, q, &mut file).and_then(|n| {
            std::io::Write::flush(&mut file)?;
            Ok(n)
        });
        drop(file);
        match n {
            Ok(n) => {
                std::fs::rename(&partial, path)
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// POSTs raw bytes (a file to check) with a query.
    pub fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: &[u8],
    ) -> Result<T> {
        let mut req = self
            .auth(self.agent.post(self.url(path)))
            .header("Content-Type", "application/octet-stream");
        for (k, v) in query {
            req = req.query(*k, v);
        }
        self.answer(&format!("POST {path}"), req.send(body))
    }

    /// DELETEs a resource; an answer without a body.
    pub fn delete(&self, path: &str) -> Result<()> {
        let req = self.auth(self.agent.delete(self.url(path)));
        self.answer_text(&format!("DELETE {path}"), req.call())
            .map(|_| ())
    }

    /// Whether labd answers at all.
    pub fn reachable(&self) -> bool {
        self.agent.get(self.url("/health")).call().is_ok()
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let req = self.auth(self.agent.post(self.url(path)));
        self.answer(&format!("POST {path}"), req.send_json(body))
    }

    /// Follows the SSE tail, calling `f` with each event's data until the stream ends.
    /// Only events of the `kinds` given (comma-separated tags), when given.
    pub fn tail(
        &self,
        from: Option<u64>,
        kinds: Option<&str>,
        mut f: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let mut req = self.auth(self.agent.get(self.url("/events/tail")));
        if let Some(from) = from {
            req = req.query("from", from.to_string());
        }
        if let Some(kinds) = kinds {
            req = req.query("kind", kinds);
        }
        let res = req
            .call()
            .map_err(|e| anyhow!("cannot reach labd at {} ({e})", self.base))?;
        if !res.status().is_success() {
            bail!("GET /events/tail: {}", res.status());
        }
        let reader = BufReader::new(res.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("reading the event stream")?;
            if let Some(data) = line.strip_prefix("data:") {
                f(data.trim_start())?;
            }
        }
        Ok(())
    }

    /// Waits for a job, drawing its progress on stderr; answers its result.
    pub fn wait_job(&self, id: u64, quiet: bool) -> Result<serde_json::Value> {
        let mut shown = false;
        loop {
            let job: serde_json::Value = self.get(&format!("/jobs/{id}"), &[])?;
            if !quiet {
                let done = job["done"].as_u64().unwrap_or(0);
                let unit = job["unit"].as_str().unwrap_or("");
                let line = match job["total"].as_u64() {
                    Some(total) if total > 0 => {
                        format!(
                            "{}: {:5.1}% ({} / {} {unit})",
                            job["kind"].as_str().unwrap_or("job"),
                            100.0 * done as f64 / total as f64,
                            done,
                            total
                        )
                    }
                    _ => format!("{}: {done} {unit}", job["kind"].as_str().unwrap_or("job")),
                };
                eprint!("\r{line:<60}");
                shown = true;
            }
            if job["finished"].as_bool() == Some(true) {
                if shown {
                    eprintln!();
                }
                if let Some(err) = job["error"].as_str() {
                    bail!("{err}");
                }
                return Ok(job["result"].clone());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Percent-encodes a metric key for a URL path, keeping its `/`.
pub fn enc_key(key: &str) -> String {
    key.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// Percent-encodes an id for a URL path segment.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
