//! The lab-wide ledger: this labd's events published to a NATS JetStream stream, and (on a hub) every host's
//! events consumed from it into this log. JetStream is the distributed log between hosts; labd only keeps
//! positions:
//! - [`publish`]: a host publishes its log in order, one shipment per stored block, each with a message id made
//!   of the host and the block's sequence range (JetStream drops a republished one); the last acknowledged
//!   sequence number is stored in the log itself, so publishing resumes where it stopped. Ingestion never waits
//!   for it.
//! - [`hub`]: a hub reads the hosts' subjects through a durable consumer and appends each host's events under
//!   their origin, with the host's new position in the same commit, and acknowledges after that commit: a
//!   redelivered or republished shipment is recognised by the position and skipped. Exactly once, end to end.
//! - [`localize`]: what a hub changes in another host's events: file paths qualified by the host, a run, sweep
//!   or benchmark whose id is taken here renamed `<id>@<host>`.

pub mod hub;
pub mod localize;
pub mod publish;

use crate::config::{Auth, Federation};
use crate::ids::Ids;
use crate::mailbox;
use crate::views::live::LiveViews;
use async_nats::jetstream;
use labd_log::EventLog;
use labd_log::writer::Appender;
use labd_schemas::api::{FederationHealth, HubHealth, PublishHealth};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What goes wrong between labd and NATS; each names the setting or the server at fault.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("publishing to NATS: {0}")]
    Publish(String),
    #[error("consuming from NATS: {0}")]
    Consume(String),
    #[error(transparent)]
    Log(#[from] labd_log::LogError),
}

/// What the federation's tasks need.
#[derive(Clone)]
pub struct Deps {
    pub settings: Federation,
    pub log: EventLog,
    pub appender: Appender,
    pub views: LiveViews,
    pub ids: Arc<Ids>,
    pub status: mailbox::Federation,
    pub stopping: watch::Receiver<bool>,
}

/// Starts the publisher and/or the hub as the role says; returns their report for `/health`.
pub fn start(
    settings: Federation,
    log: EventLog,
    appender: Appender,
    views: LiveViews,
    ids: Arc<Ids>,
    stopping: watch::Receiver<bool>,
) -> (mailbox::Federation, Vec<tokio::task::JoinHandle<()>>) {
    let status = mailbox::Federation::new(FederationHealth {
        host: settings.host.clone(),
        role: settings.role.as_str().into(),
        url: settings.shown_url(),
        connected: false,
        error: None,
        publish: settings.role.publishes().then(PublishHealth::default),
        hub: settings.role.consumes().then(HubHealth::default),
    });
    tracing::info!(
        "federation: {} as {} through {} (stream {}, subject {})",
        settings.host,
        settings.role.as_str(),
        settings.shown_url(),
        settings.stream,
        settings.subject()
    );
    let deps = Deps {
        settings,
        log,
        appender,
        views,
        ids,
        status: status.clone(),
        stopping,
    };
    let mut tasks = Vec::new();
    if deps.settings.role.publishes() {
        tasks.push(tokio::spawn(publish::run(deps.clone())));
    }
    if deps.settings.role.consumes() {
        tasks.push(tokio::spawn(hub::run(deps)));
    }
    (status, tasks)
}

/// Connects to the NATS servers with the configured credentials and TLS.
pub async fn connect(f: &Federation) -> Result<async_nats::Client, FederationError> {
    let url = f.shown_url();
    let fail = |reason: String| FederationError::Connect {
        url: url.clone(),
        reason,
    };
    let mut opts = match &f.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.0.clone())
        }
        Auth::Token(t) => async_nats::ConnectOptions::with_token(t.0.clone()),
        Auth::Nkey(seed) => async_nats::ConnectOptions::with_nkey(seed.0.clone()),
        Auth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| fail(format!("[federation] creds_file {}: {e}", path.display())))?,
    };
    if let Some(ca) = &f.tls.ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&f.tls.cert, &f.tls.key) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    if f.tls.required {
        opts = opts.require_tls(true);
    }
    let servers: Vec<async_nats::ServerAddr> = f
        .url
        .0
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("[federation] nats_url: {e}")))?;
    opts.name(format!("labd {}", f.host))
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .max_reconnects(None)
        .connect(servers)
        .await
        .map_err(|e| {
            use async_nats::ConnectErrorKind as K;
            let why = match e.kind() {
                K::AuthorizationViolation | K::Authentication => format!(
                    "the server refused labd's credentials ({}): check [federation] user/password, token, nkey_seed or creds_file",
                    auth_kind(&f.auth)
                ),
                K::Tls => format!("TLS failed ({e}): check [federation] tls_ca, tls_cert, tls_key"),
                K::ServerParse => format!("[federation] nats_url is not a server address: {e}"),
                _ => format!("cannot connect: {e}"),
            };
            fail(why)
        })
}

fn auth_kind(a: &Auth) -> &'static str {
    match a {
        Auth::None => "none given",
        Auth::UserPassword { .. } => "user/password",
        Auth::Token(_) => "token",
        Auth::Nkey(_) => "nkey",
        Auth::CredsFile(_) => "creds file",
    }
}

/// The stream, created when it is missing and creating is allowed; a stream that cannot hold this federation's
/// subjects is an error naming what to change.
pub async fn ensure_stream(
    js: &jetstream::Context,
    f: &Federation,
) -> Result<jetstream::stream::Stream, FederationError> {
    let fail = |reason: String| FederationError::Stream {
        stream: f.stream.clone(),
        reason,
    };
    let wanted = format!("{}.*", f.subject_prefix);
    match js.get_stream(&f.stream).await {
        Ok(mut stream) => {
            let info = stream
                .info()
                .await
                .map_err(|e| fail(format!("cannot read its configuration: {e}")))?;
            let subjects = &info.config.subjects;
            let covers = |s: &str| {
                subjects.iter().any(|have| {
                    have == s
                        || have == ">"
                        || *have == wanted
                        || *have == format!("{}.>", f.subject_prefix)
                })
            };
            let needed: Vec<String> = if f.role.consumes() {
                f.hub_subjects()
            } else {
                vec![f.subject()]
            };
            if let Some(missing) = needed.iter().find(|s| !covers(s)) {
                return Err(fail(format!(
                    "it holds subjects {subjects:?}, not {missing}: add {wanted:?} to its subjects, or set [federation] stream or subject_prefix to match"
                )));
            }
            if info.config.duplicate_window.is_zero() {
                return Err(fail(
                    "its duplicate_window is 0, so JetStream cannot drop republished events: give it one (e.g. 1h)"
                        .into(),
                ));
            }
            Ok(stream)
        }
        Err(e) => {
            let code = match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(j) => Some(j.error_code()),
                _ => None,
            };
            if code == Some(jetstream::ErrorCode::JETSTREAM_NOT_ENABLED)
                || code == Some(jetstream::ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT)
            {
                return Err(fail(format!(
                    "JetStream is not enabled on {} (start nats-server with -js, or enable it for this account)",
                    f.shown_url()
                )));
            }
            if code != Some(jetstream::ErrorCode::STREAM_NOT_FOUND) {
                return Err(fail(format!("cannot look it up: {e}")));
            }
            if !f.create_stream {
                return Err(fail(format!(
                    "it does not exist on {} and [federation] create_stream is false: create it with subjects [{wanted:?}] or allow labd to",
                    f.shown_url()
                )));
            }
            let config = jetstream::stream::Config {
                name: f.stream.clone(),
                subjects: vec![wanted],
                storage: jetstream::stream::StorageType::File,
                num_replicas: f.replicas,
                duplicate_window: f.duplicate_window,
                description: Some("labd: every host's event log".into()),
                ..Default::default()
            };
            let stream = js
                .get_or_create_stream(config)
                .await
                .map_err(|e| fail(format!("cannot create it: {e}")))?;
            tracing::info!(
                "federation: created JetStream stream {} ({} replica(s))",
                f.stream,
                f.replicas
            );
            Ok(stream)
        }
    }
}

/// Waits `d`, or less when labd begins to stop; answers whether it is stopping.
async fn pause(stopping: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stopping.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stopping.changed() => {}
    }
    *stopping.borrow()
}

/// The next wait after a failure: doubling from 0.2 s up to 5 s.
fn backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(200), Duration::from_secs(5))
}
