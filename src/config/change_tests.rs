//! `Config::change` on pairs of files: each kind of key gives its effect, a password change
//! is seen although it prints redacted, and every key of a full file has an effect.

use std::io::Write as _;
use std::path::Path;

use super::super::Config;
use super::{Effect, effect};

fn secret_file(text: &str) -> tempfile::NamedTempFile {
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "{text}").unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

fn file(pw: &Path, extra: &str) -> Config {
    let text = format!(
        "[agent]\nid = \"1001001\"\npassword_file = {pw:?}\n[finesse]\nnodes = [\"https://a.example:8445\"]\n\
         [[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\n{extra}"
    );
    Config::parse(Path::new("agent.toml"), &text).unwrap()
}

#[test]
fn the_same_file_changes_nothing() {
    let pw = secret_file("s3cret");
    let c = Config::change(&file(pw.path(), ""), &file(pw.path(), ""));
    assert_eq!(c, super::Change::default());
}

#[test]
fn each_kind_of_key_has_its_effect() {
    let pw = secret_file("s3cret");
    let old = file(pw.path(), "");
    let cases = [
        (
            "[xmpp]\nping_interval = \"7s\"\n",
            "xmpp.ping_interval",
            true,
            false,
        ),
        (
            "[xmpp]\ntransport = \"websocket\"\n",
            "xmpp.transport",
            true,
            false,
        ),
        (
            "[recovery]\nbackoff_max = \"9s\"\n",
            "recovery.backoff_max",
            false,
            false,
        ),
        (
            "[shutdown]\non_stop = \"logout\"\n",
            "shutdown.on_stop",
            false,
            false,
        ),
    ];
    for (extra, key, reconnect, resync) in cases {
        let new = file(pw.path(), extra);
        let c = Config::change(&old, &new);
        assert_eq!(c.keys, vec![key.to_owned()], "{extra}");
        assert_eq!((c.reconnect, c.resync), (reconnect, resync), "{extra}");
        assert!(!c.credentials, "{extra}");
    }
    let nodes = Config {
        nodes: vec!["https://b.example:8445".parse().unwrap()],
        ..old.clone()
    };
    let c = Config::change(&old, &nodes);
    assert_eq!(c.keys, vec!["finesse.nodes".to_owned()]);
    assert!(c.reconnect && !c.resync);
    let mut media = old.clone();
    media.media[0].max_dialog_limit = 5;
    let c = Config::change(&old, &media);
    assert_eq!(c.keys, vec!["media[0].max_dialog_limit".to_owned()]);
    assert!(c.resync && !c.reconnect);
    let api = file(pw.path(), "[api]\nlisten = \"127.0.0.1:9999\"\n");
    let c = Config::change(&old, &api);
    assert_eq!(c.next_start, vec!["api.listen".to_owned()]);
    assert!(!c.reconnect && !c.resync);
}

#[test]
fn a_new_password_is_a_credentials_change_though_it_prints_redacted() {
    let (a, b) = (secret_file("s3cret"), secret_file("0ther"));
    let old = file(a.path(), "");
    let same_text = file(b.path(), "");
    // The password file's path differs too, and is not printed: only the value counts.
    let c = Config::change(&old, &same_text);
    assert!(c.credentials && c.reconnect, "{c:?}");
    assert_eq!(c.keys, vec!["agent.password".to_owned()]);
    assert!(!format!("{c:?}").contains("s3cret") && !format!("{c:?}").contains("0ther"));
    let again = secret_file("s3cret");
    let c = Config::change(&old, &file(again.path(), ""));
    assert!(!c.credentials && c.keys.is_empty(), "{c:?}");
}

#[test]
fn every_key_of_a_full_file_has_an_effect() {
    let pw = secret_file("s3cret");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap()
            .replace(
                "\"/etc/finesse-taskd/1001001.password\"",
                &format!("{:?}", pw.path()),
            )
            .replace("ca_file = \"/etc/finesse-taskd/ca.pem\"", "");
    let c = Config::parse(Path::new("example.toml"), &example).unwrap();
    let mut leaves = Vec::new();
    super::leaves("", &c.redacted(), &mut leaves);
    assert!(leaves.len() > 40, "{} keys", leaves.len());
    let unknown: Vec<&String> = leaves
        .iter()
        .map(|(k, _)| k)
        .filter(|k| effect(k).is_none())
        .collect();
    assert!(unknown.is_empty(), "keys with no effect: {unknown:?}");
    assert_eq!(effect("no_such.key"), None);
    assert_eq!(effect("media[3].orphan_probe.url"), Some(Effect::Resync));
}
