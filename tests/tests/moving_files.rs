//! Files that move under labd while it reads them: renamed, deleted or truncated while a training job writes
//! them; unreadable files and folders reported while the rest is read.

use labd_e2e::{Daemon, write_run};

/// A training job appends to its log while the file is renamed, deleted or truncated under it: a renamed file
/// continues under its new name with every point once, a deleted one keeps what was read, a truncated one is
/// read again from its start as a new run, with a warning.
#[test]
fn files_renamed_deleted_or_truncated_while_being_written_and_read() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    let steps = 3000;
    let writer = |name: &'static str| {
        let path = inbox.join(format!("{name}.jsonl"));
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, r#"{{"kind":"run","name":"{name}"}}"#).unwrap();
        f
    };
    let mut files: Vec<(&str, std::fs::File)> = ["renamed", "deleted", "truncated"]
        .into_iter()
        .map(|n| (n, writer(n)))
        .collect();
    for s in 0..steps {
        for (_, f) in &mut files {
            writeln!(
                f,
                r#"{{"kind":"metrics","step":{s},"values":{{"loss":{s}}}}}"#
            )
            .unwrap();
        }
        if s % 100 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if s == steps / 2 {
            d.wait_for("the runs half read", 20, |d| {
                d.ls()
                    .iter()
                    .filter(|r| r["points"].as_u64() > Some(0))
                    .count()
                    == 3
            });
            std::fs::rename(
                inbox.join("renamed.jsonl"),
                inbox.join("renamed-moved.jsonl"),
            )
            .unwrap();
            std::fs::remove_file(inbox.join("deleted.jsonl")).unwrap();
            files[2].1.set_len(0).unwrap();
        }
    }
    for (_, f) in &mut files {
        writeln!(f, r#"{{"kind":"status","status":"completed"}}"#).unwrap();
    }
    drop(files);
    d.wait_for("the renamed run complete", 20, |d| {
        d.ls()
            .iter()
            .any(|r| r["name"] == "renamed" && r["status"] == "completed")
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let rows = d.ls();
    let named = |n: &str| rows.iter().filter(|r| r["name"] == n).collect::<Vec<_>>();
    let renamed = named("renamed");
    assert_eq!(
        renamed.len(),
        1,
        "one run for the renamed file: {renamed:?}"
    );
    assert_eq!(renamed[0]["points"], steps, "every point once: {renamed:?}");
    let deleted = named("deleted");
    assert_eq!(deleted.len(), 1);
    assert!(
        deleted[0]["points"].as_u64().unwrap() > 0,
        "what was read stays: {deleted:?}"
    );
    // The truncated file: its first run keeps what was read; what came after the truncation is read as a
    // run of its own (the writer's offset leaves a hole of NULs, which stops it as binary), with a warning.
    let errors = d.labctl_json(&["errors"]);
    let errors = errors.as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("truncated.jsonl")
                && ["shrank", "rewritten"]
                    .iter()
                    .any(|w| e["reason"].as_str().unwrap().contains(w))),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(
            |e| e["path"].as_str().unwrap().ends_with("renamed-moved.jsonl")
                && e["reason"].as_str().unwrap().contains("renamed from")
        ),
        "{errors:?}"
    );
    assert_eq!(d.get("/health").1["status"], "ok");
}

/// A file or folder labd may not read is reported with the reason, once, and the rest is read. (As root,
/// labd runs as `nobody` here, since root reads everything.)
#[test]
fn unreadable_files_and_folders_are_reported_and_the_rest_is_read() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let inbox = tmp.path().join("inbox");
    let good = write_run(&inbox.join("good.jsonl"), "good", 100, true);
    write_run(&inbox.join("secret.jsonl"), "secret", 100, true);
    write_run(&inbox.join("closed/inside.jsonl"), "inside", 100, true);
    std::fs::set_permissions(
        inbox.join("secret.jsonl"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(inbox.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(&inbox, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        inbox.join("good.jsonl"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let d = Daemon::start_as(&tmp.path().join("data"), &inbox, &[], root.then_some(65534));
    d.wait_for("the good run", 20, |d| {
        d.ls()
            .iter()
            .any(|r| r["name"] == "good" && r["points"] == good)
    });
    d.wait_for("both problems reported", 20, |d| {
        let errors = d.labctl_json(&["errors"]);
        let errors = errors.as_array().cloned().unwrap_or_default();
        let has = |path: &str, text: &str| {
            errors.iter().any(|e| {
                e["path"].as_str().unwrap_or("").ends_with(path)
                    && e["reason"].as_str().unwrap_or("").contains(text)
            })
        };
        has("secret.jsonl", "Permission denied") && has("closed", "Permission denied")
    });
    assert_eq!(d.ls().len(), 1, "only the good run");
    // Reported once, not at every rescan.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let errors = d.labctl_json(&["errors"]);
    let secret = errors
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with("secret.jsonl"))
        .count();
    assert_eq!(secret, 1, "{errors}");
    assert_eq!(d.get("/health").1["status"], "ok");
}
