//! finesse-sim's REST API, driven over real HTTPS (trusting the run's test CA): every call,
//! the per-node settings, the request log, the REST faults and the sign-in lockout.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{AGENT, MRD, PASSWORD, Sim};

#[tokio::test]
async fn system_info_names_both_nodes_with_ports_and_the_xmpp_domain_without_auth() {
    let sim = Sim::start(&[]).await;
    let r = sim
        .http
        .get(format!("{}/finesse/api/SystemInfo", sim.node("A").rest))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("<status>IN_SERVICE</status>"), "{body}");
    assert!(
        body.contains("<xmppDomain>finesse.test</xmppDomain>"),
        "{body}"
    );
    assert!(
        body.contains("<xmppPubSubDomain>pubsub.finesse.test</xmppPubSubDomain>"),
        "{body}"
    );
    let b = sim.node("B");
    assert!(
        body.contains(&format!(
            "<secondaryNode><host>127.0.0.1</host><httpsPort>{}</httpsPort>",
            b.rest.rsplit(':').next().unwrap()
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<xmppSecurePort>{}</xmppSecurePort>",
            b.xmpp_secure_port
        )),
        "{body}"
    );
}

#[tokio::test]
async fn user_media_list_and_media_need_the_owner_credentials() {
    let sim = Sim::start(&[]).await;
    let (s, body) = sim.get("A", &format!("/finesse/api/User/{AGENT}")).await;
    assert_eq!(s, 200);
    assert!(
        body.contains(&format!("<loginId>{AGENT}</loginId>")),
        "{body}"
    );
    let (s, body) = sim
        .get("A", &format!("/finesse/api/User/{AGENT}/Media"))
        .await;
    assert_eq!(s, 200);
    assert!(
        body.starts_with("<MediaList>") && body.matches("<Media>").count() == 2,
        "{body}"
    );
    let (s, body) = sim
        .get("A", &format!("/finesse/api/User/{AGENT}/Media/{MRD}"))
        .await;
    assert_eq!(s, 200);
    assert!(body.contains("<state>LOGOUT</state>"), "{body}");

    let other = sim
        .rest_as(
            "A",
            Method::GET,
            "/finesse/api/User/1001002/Media",
            AGENT,
            PASSWORD,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    let body = other.text().await.unwrap();
    assert!(body.contains("<ErrorData>1002001</ErrorData>"), "{body}");
    assert!(
        body.contains("Invalid Authorization User Specified"),
        "{body}"
    );

    let bad = sim
        .rest_as(
            "A",
            Method::GET,
            &format!("/finesse/api/User/{AGENT}"),
            AGENT,
            "wrong",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let (s, _) = sim.get("A", "/finesse/api/User/1001001/Media/9999").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn sign_in_ready_not_ready_and_logout_change_the_truth() {
    let sim = Sim::start(&[]).await;
    assert_eq!(sim.sign_in("A", 3, "ACCEPT", "CLOSE").await.0, 202);
    let m = sim.media_truth().await;
    assert_eq!(m["state"], "NOT_READY");
    assert_eq!(m["routable"], true);
    assert_eq!(m["settings"]["A"]["maxDialogLimit"], 3);
    assert_eq!(
        sim.put_media("A", "<Media><state>READY</state></Media>")
            .await
            .0,
        202
    );
    assert_eq!(sim.media_truth().await["state"], "READY");
    let nr = "<Media><state>NOT_READY</state><reasonCodeId>12</reasonCodeId></Media>";
    assert_eq!(sim.put_media("A", nr).await.0, 202);
    let (_, body) = sim
        .get("A", &format!("/finesse/api/User/{AGENT}/Media/{MRD}"))
        .await;
    // Elements in any order (Cisco's order is the default).
    assert!(
        body.contains("<state>NOT_READY</state>")
            && body.contains("<reasonCodeId>12</reasonCodeId>"),
        "{body}"
    );
    assert_eq!(
        sim.put_media("A", "<Media><routable>false</routable></Media>")
            .await
            .0,
        202
    );
    assert_eq!(sim.media_truth().await["routable"], false);
    assert_eq!(
        sim.put_media("A", "<Media><state>LOGOUT</state></Media>")
            .await
            .0,
        202
    );
    assert_eq!(sim.media_truth().await["state"], "LOGOUT");

    let (s, body) = sim.put_media("A", "<Media><state>LOGIN</state><maxDialogLimit>11</maxDialogLimit><interruptAction>ACCEPT</interruptAction></Media>").await;
    assert_eq!(s, 400);
    assert!(
        body.contains("maxDialogLimit") && body.contains("Invalid Input"),
        "{body}"
    );
    let (s, body) = sim.put_media("A", "<Media><state>READY</sta").await;
    assert_eq!(s, 400);
    assert!(body.contains("Bad Request"), "{body}");
}

#[tokio::test]
async fn already_logged_in_in_the_sync_form_is_a_400_with_code_1_and_resets_the_settings() {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({ "arm_errors": "sync" })).await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    sim.admin(
        Method::POST,
        &format!("/admin/agents/{AGENT}/media/{MRD}/drift"),
        Some(json!({ "node": "A" })),
    )
    .await;
    assert_eq!(
        sim.media_truth().await["views"]["A"]["settings"]["maxDialogLimit"],
        1,
        "drift resets to defaults"
    );
    let (s, body) = sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    assert_eq!(s, 400);
    assert!(body.contains("<ErrorData>1</ErrorData>"), "{body}");
    assert!(body.contains("<ErrorMedia>5002</ErrorMedia>"), "{body}");
    assert!(
        body.contains("<ErrorMessage>E_ARM_STAT_AGENT_ALREADY_LOGGED_IN</ErrorMessage>"),
        "{body}"
    );
    let m = sim.media_truth().await;
    assert_eq!(m["state"], "READY", "the state is untouched");
    assert_eq!(
        m["views"]["A"]["settings"]["maxDialogLimit"], 3,
        "the settings are reset"
    );
}

#[tokio::test]
async fn settings_are_kept_per_node_and_the_other_node_reads_work_not_ready_with_defaults() {
    let sim = Sim::start(&[]).await;
    sim.sign_in("A", 4, "IGNORE", "TRANSFER").await;
    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    let (_, b) = sim
        .get("B", &format!("/finesse/api/User/{AGENT}/Media/{MRD}"))
        .await;
    assert!(b.contains("<state>WORK_NOT_READY</state>"), "{b}");
    for part in [
        "<maxDialogLimit>1</maxDialogLimit>",
        "<interruptAction>ACCEPT</interruptAction>",
        "<dialogLogoutAction>CLOSE</dialogLogoutAction>",
    ] {
        assert!(b.contains(part), "{part}: {b}");
    }
    let before = sim.requests().await.len();
    assert_eq!(
        sim.sign_in("B", 4, "IGNORE", "TRANSFER").await.0,
        202,
        "signing in on a new node is no error"
    );
    let (_, b) = sim
        .get("B", &format!("/finesse/api/User/{AGENT}/Media/{MRD}"))
        .await;
    assert!(
        b.contains("<state>NOT_READY</state>") && b.contains("<maxDialogLimit>4</maxDialogLimit>"),
        "{b}"
    );
    let (_, a) = sim
        .get("A", &format!("/finesse/api/User/{AGENT}/Media/{MRD}"))
        .await;
    assert!(a.contains("<state>WORK_NOT_READY</state>"), "{a}");
    let sign_ins: Vec<_> = sim
        .requests()
        .await
        .into_iter()
        .skip(before)
        .filter(|r| r["method"] == "PUT" && r["body"].as_str().unwrap_or("").contains("LOGIN"))
        .collect();
    assert_eq!(sign_ins.len(), 1);
    assert_eq!(sign_ins[0]["node"], "B");
    assert_eq!(sign_ins[0]["status"], 202);
    assert!(
        sign_ins[0]["body"]
            .as_str()
            .unwrap()
            .contains("<maxDialogLimit>4</maxDialogLimit>")
    );
}

#[tokio::test]
async fn offered_dialogs_are_listed_and_actions_follow_the_state_table() {
    let sim = Sim::start(&[]).await;
    let (s, _) = sim
        .admin_status(
            Method::POST,
            &format!("/admin/agents/{AGENT}/media/{MRD}/offer"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 409, "no offer while signed out");
    sim.sign_in("A", 2, "ACCEPT", "CLOSE").await;
    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    let id = sim.offer(json!({ "callVariable1": "ticket-42" })).await;
    let (_, list) = sim
        .get(
            "A",
            &format!("/finesse/api/User/{AGENT}/Media/{MRD}/Dialogs"),
        )
        .await;
    assert!(
        list.contains(&format!("<id>{id}</id>")) && list.contains("<value>ticket-42</value>"),
        "{list}"
    );
    assert!(
        list.contains("<actions><action>ACCEPT</action></actions>"),
        "{list}"
    );
    let act = |a: &str| {
        format!(
            "<Dialog><requestedAction>{a}</requestedAction><targetMediaAddress>{AGENT}</targetMediaAddress></Dialog>"
        )
    };
    let put = |a: String| {
        sim.rest("A", Method::PUT, &format!("/finesse/api/Dialog/{id}"))
            .body(a)
            .send()
    };
    assert_eq!(
        put(act("START")).await.unwrap().status(),
        400,
        "START is not allowed while OFFERED"
    );
    for a in ["ACCEPT", "START", "PAUSE", "RESUME", "WRAP_UP"] {
        assert_eq!(put(act(a)).await.unwrap().status(), 202, "{a}");
    }
    assert_eq!(sim.media_truth().await["state"], "WORK_READY");
    assert_eq!(put(act("CLOSE")).await.unwrap().status(), 202);
    let (_, list) = sim
        .get(
            "A",
            &format!("/finesse/api/User/{AGENT}/Media/{MRD}/Dialogs"),
        )
        .await;
    assert_eq!(list, "<Dialogs></Dialogs>");
    let missing = sim
        .rest("A", Method::PUT, "/finesse/api/Dialog/1_2_3")
        .body(act("CLOSE"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn double_pg_failure_changes_the_list_and_customer_end_removes_a_dialog() {
    let sim = Sim::start(&[]).await;
    sim.sign_in("A", 3, "ACCEPT", "CLOSE").await;
    sim.put_media("A", "<Media><state>READY</state></Media>")
        .await;
    let first = sim.offer(json!({})).await;
    let second = sim.offer(json!({})).await;
    sim.admin(Method::POST, &format!("/admin/dialogs/{second}/end"), None)
        .await;
    let v = sim
        .admin(
            Method::POST,
            &format!("/admin/agents/{AGENT}/media/{MRD}/double-pg-failure"),
            Some(json!({ "add": 2 })),
        )
        .await;
    assert_eq!(v["removed"], json!([first]));
    let (_, list) = sim
        .get(
            "A",
            &format!("/finesse/api/User/{AGENT}/Media/{MRD}/Dialogs"),
        )
        .await;
    for id in v["added"].as_array().unwrap() {
        assert!(
            list.contains(&format!("<id>{}</id>", id.as_str().unwrap())),
            "{list}"
        );
    }
    assert!(!list.contains(&first) && !list.contains(&second), "{list}");
}

#[tokio::test]
async fn out_of_service_and_500_faults_spare_system_info_only() {
    let sim = Sim::start(&[]).await;
    let media = format!("/finesse/api/User/{AGENT}/Media/{MRD}");
    sim.faults("A", json!({ "out_of_service": true })).await;
    assert_eq!(sim.get("A", &media).await.0, 503);
    let (s, body) = sim.get("A", "/finesse/api/SystemInfo").await;
    assert_eq!(s, 200);
    assert!(body.contains("<status>OUT_OF_SERVICE</status>"), "{body}");
    assert_eq!(sim.get("B", &media).await.0, 200, "faults are per node");
    sim.faults("A", json!({ "out_of_service": false, "http_500": true }))
        .await;
    assert_eq!(sim.get("A", &media).await.0, 500);
    assert_eq!(sim.get("A", "/finesse/api/SystemInfo").await.0, 200);
    sim.faults("A", json!({ "http_500": false })).await;
    assert_eq!(sim.get("A", &media).await.0, 200);
    let (s, _) = sim
        .admin_status(
            Method::PUT,
            "/admin/nodes/A/faults",
            Some(json!({ "bogus": true })),
        )
        .await;
    assert_eq!(s, 422, "unknown fault names are refused");
}

#[tokio::test]
async fn rest_refused_closes_the_port_and_rest_hang_never_answers() {
    let sim = Sim::start(&[]).await;
    let media = format!("/finesse/api/User/{AGENT}/Media/{MRD}");
    sim.faults("A", json!({ "rest": "refused" })).await;
    let err = sim.rest("A", Method::GET, &media).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    sim.faults("A", json!({ "rest": "up" })).await;
    sim.eventually(Duration::from_secs(5), "listener reopened", || async {
        sim.rest("A", Method::GET, &media)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    sim.faults("A", json!({ "rest": "hang" })).await;
    let err = sim
        .rest("A", Method::GET, &media)
        .timeout(Duration::from_millis(800))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let hung = sim
        .requests()
        .await
        .into_iter()
        .rev()
        .find(|r| r["path"] == media.as_str())
        .unwrap();
    assert_eq!(
        hung["status"], 0,
        "the hanging request was received and never answered"
    );
    sim.faults("A", json!({ "rest": "up" })).await;
    assert_eq!(sim.get("A", &media).await.0, 200);
}

#[tokio::test]
async fn five_bad_passwords_lock_the_account_and_a_changed_password_gives_401() {
    let sim = Sim::start(&[]).await;
    sim.behaviour(json!({ "lockout_window_ms": 8000, "lockout_duration_ms": 1500 }))
        .await;
    let user = format!("/finesse/api/User/{AGENT}");
    for _ in 0..5 {
        let r = sim
            .rest_as("A", Method::GET, &user, AGENT, "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        sim.get("A", &user).await.0,
        401,
        "even the right password is refused while locked"
    );
    let t = sim.truth().await;
    assert_eq!(
        (t["locked"].clone(), t["lockouts"].clone()),
        (json!(true), json!(1))
    );
    sim.eventually(Duration::from_secs(10), "lock expires", || async {
        sim.get("A", &user).await.0 == 200
    })
    .await;

    sim.set_password(AGENT, "new-secret").await;
    assert_eq!(sim.get("A", &user).await.0, 401);
    let r = sim
        .rest_as("B", Method::GET, &user, AGENT, "new-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_request_log_records_node_method_path_body_and_status() {
    let sim = Sim::start(&[]).await;
    sim.admin(Method::DELETE, "/admin/requests", None).await;
    sim.sign_in("B", 3, "ACCEPT", "CLOSE").await;
    let log = sim.requests().await;
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(
        (
            r["node"].as_str(),
            r["method"].as_str(),
            r["status"].as_u64()
        ),
        (Some("B"), Some("PUT"), Some(202))
    );
    assert_eq!(r["path"], format!("/finesse/api/User/{AGENT}/Media/{MRD}"));
    assert!(r["body"].as_str().unwrap().contains("<state>LOGIN</state>"));
    assert!(r["time"].as_str().unwrap().ends_with('Z'));
}

/// The request log names each request's source address, so that processes that bind their
/// own loopback addresses (the hosts of a cluster on one machine) are told apart.
#[tokio::test]
async fn the_request_log_names_each_requests_source_address() {
    let sim = Sim::start(&[]).await;
    let ca = std::fs::read(&sim.info.ca_file).unwrap();
    for source in ["127.0.0.2", "127.0.0.3"] {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let url = format!("{}/finesse/api/SystemInfo", sim.node("A").rest);
        assert!(http.get(url).send().await.unwrap().status().is_success());
    }
    let peers: Vec<String> = sim
        .requests()
        .await
        .iter()
        .filter_map(|r| {
            r["peer"]
                .as_str()
                .map(|p| p.rsplit_once(':').unwrap().0.to_owned())
        })
        .collect();
    assert!(peers.contains(&"127.0.0.2".to_owned()), "{peers:?}");
    assert!(peers.contains(&"127.0.0.3".to_owned()), "{peers:?}");
}
