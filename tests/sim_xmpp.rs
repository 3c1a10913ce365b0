//! finesse-sim's notifications, read through its real Prosody by a plain tokio-xmpp agent
//! client: Media and dialog updates as escaped `<Update>` text, both "already logged in"
//! forms, SystemInfo and `finesse` presence, dropped notifications, forced logout, and the
//! Prosody controls (kill, freeze/thaw, restart on the same ports, smacks switch).

mod support;

use std::time::Duration;

use finesse_taskd::xmpp::TlsMode;
use finesse_taskd::xmpp::session::login;
use reqwest::Method;
use serde_json::json;
use support::xmpp::{Agent, Seen};
use support::{AGENT, MRD, Sim};

const MEDIA_NODE: &str = "/finesse/api/User/1001001/Media";
const DIALOGS_NODE: &str = "/finesse/api/User/1001001/Dialogs/Media";

#[tokio::test]
async fn media_and_dialog_changes_arrive_as_escaped_updates_on_their_nodes() {
    let sim = Sim::start(&[]).await;
    // The documented forms (upper-case events, a changed dialog's fields under `<dialog>`);
    // the Cisco-capture forms are the default and covered below.
    sim.behaviour(json!({
        "lowercase_events": false,
        "changed_dialog_wrapper": false,
        "cisco_element_order": false,
    }))
    .await;
    let mut agent = Agent::connect(&sim.info, "A").await;
    agent.subscribe_media().await;
    let r = sim
        .rest("A", Method::PUT, &format!("/finesse/api/User/{AGENT}/Media/{MRD}"))
        .header("requestId", "req-42")
        .body("<Media><state>LOGIN</state><maxDialogLimit>3</maxDialogLimit><interruptAction>ACCEPT</interruptAction></Media>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["requestId"], "req-42", "requestId is echoed");
    let (node, update) = agent.notification(&["<state>NOT_READY</state>"]).await;
    assert_eq!(node, MEDIA_NODE);
    assert!(update.starts_with("<Update><data><Media>"), "{update}");
    assert!(update.contains("<requestId>req-42</requestId>"), "{update}");
    assert!(
        update.contains("<source>/finesse/api/User/1001001/Media/5002</source>"),
        "{update}"
    );
    assert!(
        update.contains("<maxDialogLimit>3</maxDialogLimit>"),
        "{update}"
    );

    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    agent.notification(&["<state>READY</state>"]).await;
    let id = sim.offer(json!({ "callVariable1": "a<b&c" })).await;
    let (node, update) = agent.notification(&["<event>POST</event>"]).await;
    assert_eq!(node, DIALOGS_NODE);
    assert!(update.contains("<data><dialogs><Dialog>"), "{update}");
    assert!(
        update.contains("<value>a&lt;b&amp;c</value>"),
        "inner text stays escaped once: {update}"
    );
    assert!(
        update.contains("<source>/finesse/api/User/1001001/Media/5002/Dialogs</source>"),
        "{update}"
    );

    sim.admin(
        Method::POST,
        &format!("/admin/dialogs/{id}/action"),
        Some(json!({ "action": "ACCEPT" })),
    )
    .await;
    let (_, update) = agent
        .notification(&["<event>PUT</event>", "<dialog>"])
        .await;
    assert!(
        update.contains(&format!("<source>/finesse/api/Dialog/{id}</source>")),
        "{update}"
    );
    assert!(update.contains("<state>ACCEPTED</state>"), "{update}");

    sim.admin(Method::POST, &format!("/admin/dialogs/{id}/end"), None)
        .await;
    let (_, update) = agent.notification(&["<event>DELETE</event>"]).await;
    assert!(
        update.contains("<state>CLOSED</state>") && update.contains(&id),
        "{update}"
    );
}

#[tokio::test]
async fn already_logged_in_in_the_async_form_is_a_202_then_an_api_errors_notification() {
    let sim = Sim::start(&[]).await;
    let mut agent = Agent::connect(&sim.info, "A").await;
    agent.subscribe_media().await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    agent.notification(&["<state>NOT_READY</state>"]).await;
    let (status, _) = sim.sign_in("A", 5, "IGNORE", "CLOSE").await;
    assert_eq!(status, 202);
    let (node, update) = agent.notification(&["<apiErrors>"]).await;
    assert_eq!(node, MEDIA_NODE);
    for part in [
        "<errorData>1</errorData>",
        "<errorMedia>5002</errorMedia>",
        "<errorMessage>E_ARM_STAT_AGENT_ALREADY_LOGGED_IN</errorMessage>",
        "<errorType>Agent already logged into MRD</errorType>",
        "<event>put</event>",
    ] {
        assert!(update.contains(part), "{part} missing: {update}");
    }
    let m = sim.media_truth().await;
    assert_eq!(m["state"], "NOT_READY");
    assert_eq!(m["settings"]["A"]["maxDialogLimit"], 5);
    assert_eq!(m["settings"]["A"]["interruptAction"], "IGNORE");
}

#[tokio::test]
async fn out_of_service_publishes_system_info_and_silences_other_events() {
    let sim = Sim::start(&[]).await;
    let mut agent = Agent::connect(&sim.info, "A").await;
    agent.subscribe_media().await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    agent.notification(&["<state>NOT_READY</state>"]).await;
    sim.faults("A", json!({ "out_of_service": true })).await;
    let (node, update) = agent.notification(&["<SystemInfo>"]).await;
    assert_eq!(
        node, "/finesse/api/SystemInfo",
        "SystemInfo is auto-subscribed"
    );
    assert!(
        update.contains("<status>OUT_OF_SERVICE</status>"),
        "{update}"
    );
    sim.forced_logout().await;
    sim.faults("A", json!({ "out_of_service": false })).await;
    let (_, update) = agent.next_notification().await;
    assert!(
        update.contains("<status>IN_SERVICE</status>"),
        "no event while out of service: {update}"
    );
    let (_, update) = agent.notification(&["<Media>"]).await;
    assert!(
        update.contains("<state>LOGOUT</state>"),
        "state republished: {update}"
    );
}

#[tokio::test]
async fn dropped_notifications_are_lost_silently() {
    let sim = Sim::start(&[]).await;
    let mut agent = Agent::connect(&sim.info, "A").await;
    agent.subscribe_media().await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    agent.notification(&["<state>NOT_READY</state>"]).await;
    sim.faults("A", json!({ "drop_notifications": true })).await;
    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    sim.faults("A", json!({ "drop_notifications": false }))
        .await;
    sim.put_media(
        "A",
        "<Media><state>NOT_READY</state><reasonCodeId>7</reasonCodeId></Media>",
    )
    .await;
    let (_, update) = agent.next_notification().await;
    assert!(
        update.contains("<reasonCodeId>7</reasonCodeId>"),
        "READY was dropped: {update}"
    );
}

#[tokio::test]
async fn finesse_presence_goes_unavailable_and_back() {
    let sim = Sim::start(&[]).await;
    let mut agent =
        Agent::connect_as(&sim.info, "A", AGENT, support::PASSWORD, TlsMode::StartTls).await;
    let publisher = format!("finesse@{}", sim.info.domain);
    let is_finesse = |want: bool| {
        let publisher = publisher.clone();
        move |s: &Seen| matches!(s, Seen::Presence { from, available } if *from == publisher && *available == want)
    };
    agent
        .wait_for(Duration::from_secs(5), is_finesse(true))
        .await;
    sim.faults("A", json!({ "finesse_unavailable": true }))
        .await;
    agent
        .wait_for(Duration::from_secs(5), is_finesse(false))
        .await;
    sim.faults("A", json!({ "finesse_unavailable": false }))
        .await;
    agent
        .wait_for(Duration::from_secs(5), is_finesse(true))
        .await;
}

#[tokio::test]
async fn forced_logout_follows_presence_loss_after_the_configured_delay() {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({ "forced_logout_after_ms": 300 }))
        .await;
    let agent = Agent::connect(&sim.info, "A").await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    sim.eventually(
        Duration::from_secs(5),
        "presence seen by node A",
        || async { sim.truth().await["presence"]["A"] == json!(true) },
    )
    .await;
    assert_eq!(
        sim.media_truth().await["state"],
        "NOT_READY",
        "no logout while present"
    );
    agent.close().await;
    sim.eventually(Duration::from_secs(10), "forced logout", || async {
        let m = sim.media_truth().await;
        m["state"] == "LOGOUT" && m["reasonCodeId"] == json!(255)
    })
    .await;
}

#[tokio::test]
async fn prosody_kill_and_restart_drop_the_session_and_notifications_resume_after() {
    let sim = Sim::start(&[]).await;
    let mut agent = Agent::connect(&sim.info, "A").await;
    agent.subscribe_media().await;
    sim.prosody("A", "kill").await;
    assert!(
        agent.ping().await.is_err(),
        "no answer from a killed server"
    );
    let v = sim.prosody("A", "restart").await;
    assert_eq!(v["publisherOnline"], true);
    agent
        .wait_for(Duration::from_secs(15), |s| {
            matches!(s, Seen::Online { .. })
        })
        .await;
    agent.subscribe_media().await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    agent.notification(&["<state>NOT_READY</state>"]).await;
}

#[tokio::test]
async fn frozen_prosody_is_a_silent_dead_link_until_thawed() {
    let sim = Sim::start(&[]).await;
    let agent = Agent::connect(&sim.info, "A").await;
    assert!(agent.ping().await.is_ok());
    sim.prosody("A", "freeze").await;
    assert_eq!(agent.ping().await, Err("timeout".to_owned()));
    sim.prosody("A", "thaw").await;
    sim.eventually(
        Duration::from_secs(15),
        "ping answered after thaw",
        || async { agent.ping().await.is_ok() },
    )
    .await;
}

#[tokio::test]
async fn stream_management_is_off_by_default_and_on_with_the_smacks_switch() {
    let plain = Sim::start(&[]).await;
    assert!(!Agent::connect(&plain.info, "B").await.sm_offered);
    drop(plain);
    let sim = Sim::start(&["--smacks"]).await;
    assert!(Agent::connect(&sim.info, "B").await.sm_offered);
}

fn login_params(
    sim: &Sim,
    password: &str,
    mode: TlsMode,
) -> finesse_taskd::xmpp::session::LoginParams {
    let n = sim.node("A");
    let port = if mode == TlsMode::Direct {
        n.xmpp_secure_port
    } else {
        n.xmpp_port
    };
    let ca = std::fs::read(&sim.info.ca_file).unwrap();
    let tls = finesse_taskd::xmpp::Connector::client_config_from_pem(&ca).unwrap();
    finesse_taskd::xmpp::session::LoginParams {
        connector: finesse_taskd::xmpp::Connector::new(
            format!("127.0.0.1:{port}").parse().unwrap(),
            mode,
            tls,
        ),
        jid: format!("{AGENT}@{}/taskd", sim.info.domain)
            .parse()
            .unwrap(),
        password: finesse_taskd::secret::Secret::new(password),
        timeouts: tokio_xmpp::xmlstream::Timeouts::tight(),
        sasl: Default::default(),
        disable_sm: true,
    }
}

#[tokio::test]
async fn a_changed_password_is_refused_by_xmpp_as_an_auth_error() {
    use finesse_taskd::xmpp::session::is_auth_error;
    let sim = Sim::start(&[]).await;
    assert!(
        login(&login_params(&sim, support::PASSWORD, TlsMode::Direct))
            .await
            .is_ok()
    );
    sim.set_password(AGENT, "rotated").await;
    let err = login(&login_params(&sim, support::PASSWORD, TlsMode::Direct))
        .await
        .err()
        .expect("old password refused");
    assert!(is_auth_error(&err.error), "{err}");
    assert_eq!(err.refusals, 1, "one password sent and refused");
    // The refusal counts toward the lockout, like a REST 401 (the XMPP server checks the
    // password; the simulator reads its log).
    sim.eventually(
        Duration::from_secs(20),
        "the XMPP refusal counted",
        || async { sim.truth().await["xmppAuthFailures"] == 1 },
    )
    .await;
    assert!(
        login(&login_params(&sim, "rotated", TlsMode::StartTls))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn plain_modes_serve_http_and_unencrypted_xmpp_only_when_asked() {
    let sim = Sim::start(&["--plain-rest", "--plain-xmpp"]).await;
    let rest = &sim.node("A").rest;
    assert!(rest.starts_with("http://"), "{rest}");
    let body = reqwest::get(format!("{rest}/finesse/api/SystemInfo"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("<status>IN_SERVICE</status>"), "{body}");
    let mut agent =
        Agent::connect_as(&sim.info, "A", AGENT, support::PASSWORD, TlsMode::None).await;
    agent.subscribe_media().await;
    sim.sign_in("A", 2, "ACCEPT", "CLOSE").await;
    agent.notification(&["<state>NOT_READY</state>"]).await;

    let tls = Sim::start(&[]).await;
    assert!(tls.node("A").rest.starts_with("https://"));
    let plain = login(&login_params(&tls, support::PASSWORD, TlsMode::None)).await;
    assert!(
        plain.is_err(),
        "without --plain-xmpp the server refuses an unencrypted login"
    );
}

#[tokio::test]
async fn without_spawn_prosody_it_publishes_through_the_servers_named_in_its_config() {
    // `host` owns the Prosody pair; its publisher password is `pub-<pid>`.
    let host = Sim::start(&[]).await;
    let pid = host.child.id().unwrap();
    let base = std::fs::read_to_string(support::sim_config()).unwrap();
    let nodes = "[[nodes]]\nname = \"A\"\n\n[[nodes]]\nname = \"B\"\n";
    assert!(base.contains(nodes), "config/sim.toml changed shape");
    let (a, b) = (host.node("A"), host.node("B"));
    let external = format!(
        "[[nodes]]\nname = \"A\"\nxmpp_port = {}\nxmpp_secure_port = {}\n\n\
         [[nodes]]\nname = \"B\"\nxmpp_port = {}\nxmpp_secure_port = {}\n\n\
         [publisher]\nuser = \"finesse\"\npassword = \"pub-{pid}\"\nca_file = {:?}\n",
        a.xmpp_port, a.xmpp_secure_port, b.xmpp_port, b.xmpp_secure_port, host.info.ca_file,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("external.toml");
    std::fs::write(&path, base.replace(nodes, &external)).unwrap();
    let sim = Sim::start_with(path, &[]).await;
    // The ports it publishes are its network's, in front of the servers named in its config:
    // a stream opened through them is answered by that server.
    assert_ne!(sim.node("A").xmpp_port, a.xmpp_port);
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", sim.node("A").xmpp_port))
            .await
            .unwrap();
        let open = format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams'>",
            host.info.domain
        );
        s.write_all(open.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("starttls") {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
    let mut agent = Agent::connect(&host.info, "A").await;
    agent.subscribe_media().await;
    sim.sign_in("A", 2, "ACCEPT", "CLOSE").await;
    let (node, _) = agent.notification(&["<state>NOT_READY</state>"]).await;
    assert_eq!(node, MEDIA_NODE);
    let (status, _) = sim
        .admin_status(Method::POST, "/admin/nodes/A/prosody/kill", None)
        .await;
    assert_eq!(status, 409, "it does not control servers it did not spawn");
}

#[tokio::test]
async fn by_default_updates_use_ciscos_captured_forms() {
    let sim = Sim::start(&[]).await;
    let mut agent = Agent::connect(&sim.info, "A").await;
    agent.subscribe_media().await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    let (_, update) = agent.notification(&["<state>NOT_READY</state>"]).await;
    assert!(update.contains("<event>put</event>"), "{update}");
    assert!(
        update.trim_start().starts_with("<Update><event>"),
        "Cisco's order: event, source, requestId, data: {update}"
    );
    let media_at = update.find("<Media>").unwrap();
    assert!(
        update[media_at..].starts_with("<Media><uri>") && update.contains("<description>"),
        "{update}"
    );
    assert!(
        !update.contains("<interruptAction>"),
        "Cisco's Media notification has no interruptAction: {update}"
    );
    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    agent.notification(&["<state>READY</state>"]).await;
    let id = sim.offer(json!({})).await;
    agent.notification(&["<event>post</event>"]).await;
    sim.admin(
        Method::POST,
        &format!("/admin/dialogs/{id}/action"),
        Some(json!({ "action": "ACCEPT" })),
    )
    .await;
    let (_, update) = agent
        .notification(&["<event>put</event>", "<dialog><Dialog>"])
        .await;
    assert!(update.contains("<state>ACCEPTED</state>"), "{update}");
}
