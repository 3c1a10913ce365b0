//! Config tests: the shipped example parses, and every kind of mistake is refused with the
//! file and the key named.

use std::io::Write as _;
use std::path::Path;

use super::*;

fn password_file(mode: u32) -> tempfile::NamedTempFile {
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "s3cret-value").unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

fn base(pw: &Path) -> String {
    format!(
        "[agent]\nid = \"1001001\"\npassword_file = {:?}\n[finesse]\nnodes = [\"https://a.example:8445\"]\n\
         [[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\n",
        pw
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("agent.toml"), text)
}

#[test]
fn the_shipped_example_parses_with_its_password_file_swapped_in() {
    let pw = password_file(0o600);
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap();
    let example = example
        .replace(
            "\"/etc/finesse-taskd/1001001.password\"",
            &format!("{:?}", pw.path()),
        )
        .replace("ca_file = \"/etc/finesse-taskd/ca.pem\"", "");
    let c = parse(&example).unwrap();
    assert!(matches!(&c.auth, Auth::Basic(p) if p.expose() == "s3cret-value"));
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.media[0].max_dialog_limit, 3);
    assert_eq!(c.recovery.auth_retry, Duration::from_secs(360));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn mistakes_name_the_file_and_key() {
    let pw = password_file(0o600);
    let ok = base(pw.path());
    let cases = [
        (
            ok.replace("max_dialog_limit = 3", "max_dialog_limit = 11"),
            "media[0].max_dialog_limit",
            "11 is out of range 1..=10",
        ),
        (
            ok.replace("\"ACCEPT\"", "\"MAYBE\""),
            "media[0].interrupt_action",
            "MAYBE",
        ),
        (
            format!("{ok}[xmpp]\nresource = \"desktop\"\n"),
            "xmpp.resource",
            "desktop",
        ),
        (
            format!("{ok}[xmpp]\ntls = \"none\"\n"),
            "xmpp.tls",
            "insecure",
        ),
        (
            ok.replace("https://a.example:8445", "ftp://a"),
            "finesse.nodes[0]",
            "ftp",
        ),
        (
            ok.replace("max_dialog_limit = 3", "max_dialog_limit = \"three\""),
            "line",
            "invalid type",
        ),
        (
            format!("{ok}[recovery]\nbogus = 1\n"),
            "line",
            "unknown field",
        ),
        (
            format!("{ok}[recovery]\nbackoff_jitter = 2.0\n"),
            "recovery.backoff_jitter",
            "0..=1",
        ),
        (
            format!("{ok}[media.orphan_probe]\nurl = \"https://chat/{{user}}\"\n"),
            "media[0].orphan_probe.url",
            "unknown field {user}",
        ),
        (
            format!("{ok}[media.orphan_probe]\nurl = \"https://{{callvariable:host}}/s\"\n"),
            "media[0].orphan_probe.url",
            "only in the path and the query",
        ),
        (
            format!("{ok}[media.orphan_probe]\nurl = \"https://chat/{{id}}\"\naction = \"nuke\"\n"),
            "media[0].orphan_probe.action",
            "nuke",
        ),
        (
            format!("{ok}[media.orphan_probe]\nurl = \"https://chat/{{id}}\"\n"),
            "media[0].orphan_probe.gone_status",
            "proxy's or load balancer's own 404",
        ),
        (
            format!(
                "{ok}[media.orphan_probe]\nurl = \"https://chat/{{id}}\"\nmethod = \"HEAD\"\ngone_body_contains = \"gone\"\n"
            ),
            "media[0].orphan_probe.gone_body_contains",
            "no body",
        ),
        (
            format!(
                "{ok}[media.orphan_probe]\nurl = \"https://chat/{{id}}\"\ngone_header = \"X Bad\"\n"
            ),
            "media[0].orphan_probe.gone_header",
            "is not",
        ),
        (
            format!("{ok}[xmpp]\ntransport = \"bosh\"\n"),
            "xmpp.transport",
            "\"bosh\" is not one of tcp, websocket",
        ),
        (
            format!("{ok}[xmpp]\nwebsocket_path = \"ws\"\n"),
            "xmpp.websocket_path",
            "must be a path",
        ),
        (
            format!("{ok}[api]\nsocket_mode = \"0666\"\n"),
            "api.socket_mode",
            "every local user",
        ),
        (
            format!("{ok}[api]\nsocket_mode = \"rw\"\n"),
            "api.socket_mode",
            "not an octal mode",
        ),
        (
            format!("{ok}[api]\nsocket_group = \"no-such-group-here\"\n"),
            "api.socket_group",
            "no group",
        ),
        (
            format!("{ok}[api]\nmax_connections = 16\nmax_sse_clients = 16\n"),
            "api.max_sse_clients",
            "below api.max_connections",
        ),
        (
            format!("{ok}[api]\nwrite_timeout = \"0s\"\n"),
            "api.write_timeout",
            "above zero",
        ),
    ];
    for (text, key, msg) in cases {
        let e = parse(&text).expect_err(key);
        let shown = e.to_string();
        assert!(shown.starts_with("agent.toml: "), "{shown}");
        assert!(e.key.starts_with(key), "{key}: {shown}");
        assert!(shown.contains(msg), "{msg}: {shown}");
    }
}

#[test]
fn a_missing_password_file_is_an_error_and_so_is_one_group_or_others_can_read() {
    let e = parse(&base(Path::new("/nonexistent/pw"))).unwrap_err();
    assert_eq!(e.key, "agent.password_file");
    for mode in [0o644, 0o640, 0o604, 0o620] {
        let pw = password_file(mode);
        let e = parse(&base(pw.path())).unwrap_err();
        assert_eq!(e.key, "agent.password_file", "{mode:o}");
        assert!(e.message.contains("chmod 600"), "{e}");
    }
    assert!(parse(&base(password_file(0o600).path())).is_ok());
    assert!(parse(&base(password_file(0o400).path())).is_ok());
}

#[test]
fn a_shutdown_timeout_of_the_units_stop_timeout_or_more_is_refused() {
    let pw = password_file(0o600);
    let text = format!("{}[shutdown]\ntimeout = \"20s\"\n", base(pw.path()));
    assert_eq!(parse(&text).unwrap_err().key, "shutdown.timeout");
    let text = format!("{}[shutdown]\ntimeout = \"15s\"\n", base(pw.path()));
    assert!(parse(&text).is_ok());
}

#[test]
fn the_password_never_shows_in_debug_output() {
    let pw = password_file(0o600);
    let c = parse(&base(pw.path())).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret-value"));
    assert!(debug.contains("<redacted>"));
}

#[test]
fn the_printed_config_shows_every_recovery_key_and_never_the_password() {
    let pw = password_file(0o600);
    let text = format!("{}[recovery]\nresync_every = \"7m\"\n", base(pw.path()));
    let shown = parse(&text).unwrap().redacted();
    assert_eq!(shown["recovery"]["resync_every"], "7m");
    let keys: Vec<&String> = shown["recovery"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 11, "{keys:?}");
    assert_eq!(shown["agent"]["password"], "<redacted>");
    assert!(!shown.to_string().contains("s3cret-value"));
}

#[test]
fn the_password_and_token_are_their_files_first_lines_and_more_lines_are_warned_of_unshown() {
    use std::os::unix::fs::PermissionsExt;
    let mut pw = tempfile::NamedTempFile::new().unwrap();
    write!(pw, "s3cret-value\r\nold-password\n").unwrap();
    std::fs::set_permissions(pw.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut token = tempfile::NamedTempFile::new().unwrap();
    write!(token, "0123456789abcdef0123\nsecond-line\n").unwrap();
    std::fs::set_permissions(token.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "{}[api]\ntoken_file = {:?}\n",
        base(pw.path()),
        token.path()
    );
    let c = parse(&text).unwrap();
    assert!(matches!(&c.auth, Auth::Basic(p) if p.expose() == "s3cret-value"));
    assert_eq!(
        c.api_token.as_ref().map(|t| t.expose().to_owned()),
        Some("0123456789abcdef0123".to_owned())
    );
    let warned = c.warnings.join("\n");
    assert!(
        warned.contains("agent.password_file") && warned.contains("only the first is used"),
        "{warned}"
    );
    assert!(warned.contains("api.token_file"), "{warned}");
    assert!(!warned.contains("old-password") && !warned.contains("second-line"));
    // A single line with or without its line end: no warning.
    let one = password_file(0o600);
    assert!(parse(&base(one.path())).unwrap().warnings.is_empty());
}

#[test]
fn a_secret_file_read_again_at_run_time_is_refused_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = password_file(0o600);
    assert_eq!(read_again(f.path(), true).unwrap().trim(), "s3cret-value");
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = read_again(f.path(), true).unwrap_err();
    assert!(e.contains("readable or writable by group or others"), "{e}");
    assert!(!e.contains("s3cret-value"));
    // A systemd credential is the service's own.
    assert!(read_again(f.path(), false).is_ok());
}

#[test]
fn a_token_file_read_again_is_refused_through_a_symlink_or_when_another_user_owns_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = password_file(0o600);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("token.json");
    std::os::unix::fs::symlink(f.path(), &link).unwrap();
    let e = read_again(&link, true).unwrap_err();
    assert!(e.contains("is a symlink"), "{e}");
    // Not a regular file.
    let e = read_again(dir.path(), true).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
    // Another owner (what this user sees is told apart from another uid by the same check).
    let me = nix::unistd::geteuid().as_raw();
    assert_eq!(
        super::secrets::read_private(f.path(), me).unwrap().trim(),
        "s3cret-value"
    );
    let e = super::secrets::read_private(f.path(), me.wrapping_add(1)).unwrap_err();
    assert!(e.contains(&format!("is owned by uid {me}")), "{e}");
    assert!(!e.contains("s3cret-value"));
    // Group or others.
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = read_again(f.path(), true).unwrap_err();
    assert!(e.contains("chmod 600"), "{e}");
}
