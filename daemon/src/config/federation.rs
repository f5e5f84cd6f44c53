//! `[federation]`: this labd's place in a lab-wide ledger over NATS JetStream (see `crate::federation`).

use super::{ConfigError, Token, seconds};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[federation]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FederationFile {
    nats_url: Option<String>,
    host: Option<String>,
    role: Option<String>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    nkey_seed: Option<String>,
    creds_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_required: Option<bool>,
    stream: Option<String>,
    subject_prefix: Option<String>,
    create_stream: Option<bool>,
    replicas: Option<usize>,
    duplicate_window: Option<f64>,
    hosts: Option<Vec<String>>,
    consumer: Option<String>,
}

/// What this labd does in the federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Publishes its own events.
    Host,
    /// Consumes the hosts' events into its log.
    Hub,
    /// Both: publishes its own events and consumes every host's (its own are skipped: they are here already).
    Both,
}

impl Role {
    pub fn publishes(self) -> bool {
        matches!(self, Role::Host | Role::Both)
    }

    pub fn consumes(self) -> bool {
        matches!(self, Role::Hub | Role::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Hub => "hub",
            Role::Both => "both",
        }
    }
}

/// How labd proves itself to NATS. Secrets are [`Token`]s: their `Debug` form hides them.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    UserPassword { user: String, password: Token },
    Token(Token),
    Nkey(Token),
    CredsFile(PathBuf),
}

/// TLS to NATS: the CA to trust, a client certificate, whether TLS is required.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub required: bool,
}

/// The validated `[federation]` section.
#[derive(Clone, Debug)]
pub struct Federation {
    /// One or more servers, comma-separated (`nats://host:4222`, `tls://...`).
    pub url: NatsUrl,
    /// This host's name in the federation: the last token of its subject.
    pub host: String,
    pub role: Role,
    pub auth: Auth,
    pub tls: Tls,
    /// The JetStream stream that holds every host's events.
    pub stream: String,
    /// Events of host `h` are published on `<subject_prefix>.<h>`.
    pub subject_prefix: String,
    /// Create the stream when it is missing (else a missing stream is an error naming it).
    pub create_stream: bool,
    /// Replicas of a created stream (3 on a three-node cluster).
    pub replicas: usize,
    /// JetStream's de-duplication window for a created stream.
    pub duplicate_window: Duration,
    /// On a hub: the hosts whose subjects it consumes (empty: every host under the prefix).
    pub hosts: Vec<String>,
    /// On a hub: the durable consumer's name.
    pub consumer: String,
}

impl Federation {
    /// The subject this host publishes on.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.subject_prefix, self.host)
    }

    /// The subjects a hub consumes.
    pub fn hub_subjects(&self) -> Vec<String> {
        if self.hosts.is_empty() {
            vec![format!("{}.*", self.subject_prefix)]
        } else {
            self.hosts
                .iter()
                .map(|h| format!("{}.{h}", self.subject_prefix))
                .collect()
        }
    }

    /// The URL as it may be shown: any `user:password@` in it hidden.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url.0)
    }
}

/// The servers' URL, which may carry a user and password: its `Debug` form hides them.
#[derive(Clone)]
pub struct NatsUrl(pub String);

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsUrl({})", shown_url(&self.0))
    }
}

/// `url` with the credentials a URL can carry (`nats://user:pass@host`) hidden.
pub fn shown_url(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}<hidden>@{}", &u[..s + 3], &u[at + 1..]),
            (None, Some(at)) => format!("<hidden>@{}", &u[at + 1..]),
            _ => u.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// A token of a NATS subject: letters, digits, `-` and `_` (no `.`, `*`, `>` or spaces).
fn subject_token(setting: &'static str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            setting,
            format!(
                "{s:?} cannot be a NATS subject token (letters, digits, '-' and '_' only; a host name with dots needs [federation] host)"
            ),
        ));
    }
    Ok(())
}

/// Validates `[federation]`; `default_host` is labd's `host` setting; `rel` makes paths relative to the file.
pub(super) fn resolve(
    file: FederationFile,
    default_host: &str,
    rel: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<Federation>, ConfigError> {
    let Some(url) = file.nats_url.filter(|u| !u.trim().is_empty()) else {
        let any = file.host.is_some() || file.role.is_some() || file.stream.is_some();
        if any {
            return Err(invalid(
                "[federation] nats_url",
                "missing: the NATS server(s) to federate through, e.g. nats://127.0.0.1:4222",
            ));
        }
        return Ok(None);
    };
    for u in url.split(',') {
        let u = u.trim();
        let rest = u.split_once("://").map_or(u, |(scheme, rest)| {
            if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                return "";
            }
            rest
        });
        let hostport = rest.rsplit('@').next().unwrap_or("");
        if hostport.is_empty() || hostport.contains('/') && !u.starts_with("ws") {
            return Err(invalid(
                "[federation] nats_url",
                format!(
                    "{:?} is not a NATS server address (nats://host:port, tls://host:port)",
                    shown_url(u)
                ),
            ));
        }
    }
    let host = file.host.unwrap_or_else(|| default_host.to_string());
    subject_token("[federation] host", &host)?;
    let role = match file.role.as_deref().unwrap_or("host") {
        "host" => Role::Host,
        "hub" => Role::Hub,
        "both" => Role::Both,
        other => {
            return Err(invalid(
                "[federation] role",
                format!("{other:?}: expected \"host\", \"hub\" or \"both\""),
            ));
        }
    };
    let secret = |s: Option<String>| s.filter(|s| !s.is_empty()).map(Token);
    let mut ways = Vec::new();
    let auth = {
        let (user, password) = (file.user, secret(file.password));
        if user.is_some() || password.is_some() {
            ways.push("user/password");
        }
        let token = secret(file.token);
        if token.is_some() {
            ways.push("token");
        }
        let nkey = secret(file.nkey_seed);
        if nkey.is_some() {
            ways.push("nkey_seed");
        }
        if file.creds_file.is_some() {
            ways.push("creds_file");
        }
        if ways.len() > 1 {
            return Err(invalid(
                "[federation] credentials",
                format!("{} given: set one way to log in", ways.join(" and ")),
            ));
        }
        match (user, password, token, nkey, file.creds_file) {
            (Some(user), Some(password), ..) => Auth::UserPassword { user, password },
            (Some(_), None, ..) | (None, Some(_), ..) => {
                return Err(invalid(
                    "[federation] user/password",
                    "both are needed, or neither",
                ));
            }
            (_, _, Some(t), ..) => Auth::Token(t),
            (_, _, _, Some(seed), _) => {
                if !seed.as_str().starts_with("SU") {
                    return Err(invalid(
                        "[federation] nkey_seed",
                        "not a user nkey seed (those start with \"SU\")",
                    ));
                }
                Auth::Nkey(seed)
            }
            (_, _, _, _, Some(path)) => Auth::CredsFile(rel(&path)),
            _ => Auth::None,
        }
    };
    let tls = Tls {
        ca: file.tls_ca.as_deref().map(rel),
        cert: file.tls_cert.as_deref().map(rel),
        key: file.tls_key.as_deref().map(rel),
        required: file.tls_required.unwrap_or(false),
    };
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(invalid(
            "[federation] tls_cert/tls_key",
            "a client certificate needs both",
        ));
    }
    for (setting, path) in [
        ("[federation] tls_ca", &tls.ca),
        ("[federation] tls_cert", &tls.cert),
        ("[federation] tls_key", &tls.key),
    ] {
        if let Some(p) = path
            && !p.is_file()
        {
            return Err(invalid(setting, format!("{} is not a file", p.display())));
        }
    }
    if let Auth::CredsFile(p) = &auth
        && !p.is_file()
    {
        return Err(invalid(
            "[federation] creds_file",
            format!("{} is not a file", p.display()),
        ));
    }
    let stream = file.stream.unwrap_or_else(|| "LABD_EVENTS".into());
    subject_token("[federation] stream", &stream)?;
    let subject_prefix = file.subject_prefix.unwrap_or_else(|| "labd.events".into());
    if subject_prefix.is_empty()
        || subject_prefix.split('.').any(|t| {
            t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    {
        return Err(invalid(
            "[federation] subject_prefix",
            format!("{subject_prefix:?} is not a NATS subject without wildcards"),
        ));
    }
    let replicas = file.replicas.unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        return Err(invalid(
            "[federation] replicas",
            format!("{replicas}: JetStream keeps 1 to 5 replicas"),
        ));
    }
    let duplicate_window = match file.duplicate_window {
        Some(s) => seconds("[federation] duplicate_window", s)?,
        None => Duration::from_secs(3600),
    };
    let hosts = file.hosts.unwrap_or_default();
    for h in &hosts {
        subject_token("[federation] hosts", h)?;
    }
    let consumer = file.consumer.unwrap_or_else(|| format!("labd-hub-{host}"));
    subject_token("[federation] consumer", &consumer)?;
    Ok(Some(Federation {
        url: NatsUrl(url),
        host,
        role,
        auth,
        tls,
        stream,
        subject_prefix,
        create_stream: file.create_stream.unwrap_or(true),
        replicas,
        duplicate_window,
        hosts,
        consumer,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Option<Federation>, ConfigError> {
        let file: FederationFile = toml::from_str(toml).unwrap();
        resolve(file, "gpu7", &|p: &Path| Path::new("/etc/labd").join(p))
    }

    #[test]
    fn a_section_with_a_url_federates_with_defaults() {
        assert!(parse("").unwrap().is_none());
        let f = parse("nats_url = \"nats://127.0.0.1:4222\"")
            .unwrap()
            .unwrap();
        assert_eq!(f.host, "gpu7");
        assert_eq!(f.role, Role::Host);
        assert_eq!(f.subject(), "labd.events.gpu7");
        assert_eq!(f.hub_subjects(), vec!["labd.events.*"]);
        assert_eq!(f.consumer, "labd-hub-gpu7");
        let f = parse(
            "nats_url = \"nats://a:4222,nats://b:4222\"\nrole = \"hub\"\nhosts = [\"gpu1\", \"gpu2\"]\ncreds_file = \"/dev/null\"",
        );
        assert!(matches!(
            f,
            Err(ConfigError::Invalid {
                setting: "[federation] creds_file",
                ..
            })
        ));
        let f = parse("nats_url = \"nats://a:4222\"\nrole = \"hub\"\nhosts = [\"gpu1\", \"gpu2\"]")
            .unwrap()
            .unwrap();
        assert_eq!(
            f.hub_subjects(),
            vec!["labd.events.gpu1", "labd.events.gpu2"]
        );
    }

    #[test]
    fn mistakes_name_their_setting_and_secrets_stay_hidden() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert!(err("role = \"hub\"").contains("nats_url"));
        assert!(err("nats_url = \"http://x\"").contains("not a NATS server address"));
        assert!(
            err("nats_url = \"nats://x:1\"\nhost = \"gpu7.lab\"").contains("[federation] host")
        );
        assert!(err("nats_url = \"nats://x:1\"\nrole = \"leader\"").contains("[federation] role"));
        assert!(err("nats_url = \"nats://x:1\"\nuser = \"u\"").contains("user/password"));
        let e = err("nats_url = \"nats://x:1\"\nuser = \"u\"\npassword = \"p\"\ntoken = \"t\"");
        assert!(e.contains("user/password and token"), "{e}");
        assert!(err("nats_url = \"nats://x:1\"\nnkey_seed = \"xx\"").contains("nkey"));
        assert!(err("nats_url = \"nats://x:1\"\nreplicas = 7").contains("replicas"));
        assert!(
            err("nats_url = \"nats://x:1\"\nsubject_prefix = \"a.*\"").contains("subject_prefix")
        );
        let f = parse("nats_url = \"nats://u:sekrit@x:1\"\nuser = \"u\"\npassword = \"sekrit\"")
            .unwrap()
            .unwrap();
        assert!(!format!("{f:?}").contains("sekrit"), "{f:?}");
        assert_eq!(f.shown_url(), "nats://<hidden>@x:1");
    }
}
