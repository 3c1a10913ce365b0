//! SSO config tests: a token file in Cisco's shape is read with its time, every mistake
//! names its key, and neither token ever shows in the debug or printed config.

use std::io::Write as _;
use std::path::Path;

use super::*;
use crate::config::Config;

const PAIR: &str = r#"{"token":"ACCESS-SECRET-1","refresh_token":"REFRESH-SECRET-1","expires_in":300,"user_id":"jdoe"}"#;

fn token_file(text: &str, mode: u32) -> tempfile::NamedTempFile {
    use std::os::unix::fs::PermissionsExt;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

fn with_agent(agent: &str) -> String {
    format!(
        "[agent]\nid = \"1001001\"\n{agent}\n[finesse]\nnodes = [\"https://a.example:8445\"]\n\
         [[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\n"
    )
}

fn sso(file: &Path) -> String {
    with_agent(&format!("auth = \"sso\"\nsso_token_file = {file:?}"))
}

fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
    Config::parse(Path::new("agent.toml"), text)
}

#[test]
fn a_token_file_in_ciscos_shape_is_read_with_its_modification_time() {
    let f = token_file(PAIR, 0o600);
    let c = parse(&sso(f.path())).unwrap();
    let Auth::Sso(s) = &c.auth else {
        panic!("not sso: {:?}", c.auth)
    };
    let written = std::fs::metadata(f.path()).unwrap().modified().unwrap();
    assert_eq!(s.tokens.obtained_at, written);
    assert_eq!(s.tokens.token.expose(), "ACCESS-SECRET-1");
    assert_eq!(s.xmpp_mechanisms, ["PLAIN"]);
    assert_eq!(s.xmpp_username, XmppUsername::LoginId);
    assert!((s.refresh_at - 0.75).abs() < f64::EPSILON);
    let shown = format!("{c:?} {}", c.redacted());
    for secret in ["ACCESS-SECRET-1", "REFRESH-SECRET-1"] {
        assert!(!shown.contains(secret), "{secret} shown");
    }
    assert!(shown.contains("\"auth\":\"sso\""), "{shown}");
}

#[test]
fn sso_mistakes_name_the_key() {
    let good = token_file(PAIR, 0o600);
    let readable = token_file(PAIR, 0o644);
    let no_refresh = token_file(r#"{"token":"a","expires_in":300}"#, 0o600);
    let no_user = token_file(
        r#"{"token":"a","refresh_token":"r","expires_in":300}"#,
        0o600,
    );
    let cases = [
        (
            with_agent(&format!(
                "auth = \"sso\"\nsso_token_file = {:?}\npassword = \"x\"",
                good.path()
            )),
            "agent.password_file",
            "takes no password",
        ),
        (
            with_agent("auth = \"sso\""),
            "agent.sso_token_file",
            "exactly one of sso_token_file, sso_token_credential",
        ),
        (
            with_agent(&format!(
                "password = \"x\"\nsso_token_file = {:?}",
                good.path()
            )),
            "agent.sso_token_file",
            "only with auth = \\\"sso\\\"",
        ),
        (
            with_agent("auth = \"oauth\"\npassword = \"x\""),
            "agent.auth",
            "\"oauth\" is not one of basic, sso",
        ),
        (sso(readable.path()), "agent.sso_token_file", "chmod 600"),
        (
            sso(no_refresh.path()),
            "agent.sso_token_file",
            "refresh_token: missing",
        ),
        (
            format!("{}[sso]\nrefresh_at = 0.99\n", sso(good.path())),
            "sso.refresh_at",
            "out of range",
        ),
        (
            format!(
                "{}[sso]\nxmpp_username = \"login_name\"\n",
                sso(no_user.path())
            ),
            "sso.xmpp_username",
            "has none",
        ),
        (
            format!("{}[sso]\nxmpp_username = \"email\"\n", sso(good.path())),
            "sso.xmpp_username",
            "not one of login_id, login_name",
        ),
    ];
    for (text, key, message) in cases {
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        let shown = format!("{e}").replace('"', "\\\"");
        assert!(
            e.message.contains(message) || shown.contains(message),
            "{e} lacks {message}"
        );
    }
}
