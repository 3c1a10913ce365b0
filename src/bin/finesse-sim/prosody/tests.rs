//! Prosody process tests: a port taken by another process (against the real server) and the
//! file-name encoding of its storage.

use super::*;

fn spec(dir: &Path) -> ProsodySpec {
    let domain = "finesse.test".to_string();
    ProsodySpec {
        kind: ServerKind::Prosody,
        dir: dir.join("prosody"),
        pki: crate::certs::generate(&dir.join("certs"), &domain).unwrap(),
        domain,
        c2s_port: 0,
        direct_tls_port: 0,
        websocket_port: 0,
        smacks: false,
        nagle: false,
        plain: false,
        publisher: "finesse".into(),
        accounts: vec![("finesse".into(), "pw".into())],
    }
}

#[tokio::test]
async fn a_port_taken_by_another_process_fails_the_start_and_leaves_nothing_running() {
    check_installed().expect("prosody must be installed: scripts/install-deps.sh");
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let mut prosody = Prosody::launch(spec).await.unwrap();
    let pid = prosody.pid().unwrap().as_raw();
    let (c2s, dtls) = (prosody.spec().c2s_port, prosody.spec().direct_tls_port);
    assert_ne!(c2s, dtls);
    assert_eq!(
        ports::listeners(pid, &[c2s, dtls]).unwrap(),
        [Listener::Ours, Listener::Ours]
    );

    prosody.stop().await.unwrap();
    let thief = std::net::TcpListener::bind(("127.0.0.1", dtls)).unwrap();
    let err = prosody.start().await.unwrap_err();
    assert_eq!(err.downcast_ref::<PortTaken>().map(|t| t.0), Some(dtls));
    assert!(
        !prosody.is_running(),
        "a Prosody without its ports was left running"
    );

    drop(thief);
    prosody.start().await.unwrap();
    let pid = prosody.pid().unwrap().as_raw();
    assert_eq!(ports::listeners(pid, &[dtls]).unwrap(), [Listener::Ours]);
    prosody.stop().await.unwrap();
}

/// A port that another process had bound (not listening, so it shows as nobody's listener)
/// while the server started: Prosody logs the failure and serves nothing there, and the start
/// reports the port as taken (so the launch draws again) instead of failing the simulator.
/// Both servers (ejabberd is in the CI's package list too).
#[tokio::test]
async fn a_port_bound_elsewhere_during_the_start_is_reported_taken() {
    check_installed().expect("prosody must be installed: scripts/install-deps.sh");
    for kind in [ServerKind::Prosody, ServerKind::Ejabberd] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.kind = kind;
        let mut server = Prosody::launch(spec).await.unwrap();
        let c2s = server.spec().c2s_port;
        server.stop().await.unwrap();

        let thief =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        thief
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], c2s)).into())
            .unwrap();
        let err = server.start().await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<PortTaken>().map(|t| t.0),
            Some(c2s),
            "{kind:?}: {err:#}"
        );
        assert!(!server.is_running(), "{kind:?} left running");
    }
}

#[test]
fn encodes_names_like_prosody_datamanager() {
    assert_eq!(encode("finesse.test"), "finesse%2etest");
    assert_eq!(encode("1001001"), "1001001");
    assert_eq!(encode("a-b_c"), "a%2db%5fc");
}
