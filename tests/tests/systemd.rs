//! `Type=notify`: labd tells systemd it is ready once it listens.

use labd_e2e::{KillOnDrop, bin, free_port};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn labd_signals_readiness_on_the_notify_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _labd = KillOnDrop(
        std::process::Command::new(bin("labd"))
            .args([
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--data-dir",
            ])
            .arg(tmp.path().join("data"))
            .env("NOTIFY_SOCKET", &socket_path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .expect("labd sent nothing on NOTIFY_SOCKET");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.contains("READY=1"), "{msg}");
}
