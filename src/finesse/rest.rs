//! The Finesse REST client: Basic auth (or SSO's Bearer token, see [`super::identity`]), the custom CA, per-request timeouts, response bodies
//! capped at `max_body`, and errors classified by cause so the recovery machine can decide between
//! "retry later", "fail over" and "stop: credentials rejected".

use reqwest::{Method, Url};

use super::answer_cache::AnswerCache;
use super::model::{ApiError, ApiErrors, Dialog, Dialogs, Media, SystemInfo, XmlError};
use crate::config::{InterruptAction, LogoutAction};
use crate::vocab::{Cause, DialogAction};

/// What every authenticated request carries.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// `Authorization: Basic` with the agent's id and password.
    Basic(crate::secret::Secret),
    /// `Authorization: Bearer` with the current SSO access token (never Basic).
    Bearer(crate::sso::TokenCell),
}

/// Each node's anonymous SystemInfo answer, shared by the agents of a fleet.
pub type SystemInfoCache = AnswerCache<Result<SystemInfo, RestError>>;

/// A REST failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    /// Connect error, TLS error or timeout: the node is unreachable.
    #[error("transport: {0}")]
    Transport(String),
    /// A request with a body failed after it may have been sent (a timeout or a reset after
    /// the connection was made): Finesse may or may not have acted on it.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// 401: credentials rejected (never retried quickly: Finesse locks accounts).
    #[error("401 unauthorized")]
    Unauthorized,
    /// 5xx: the node is unwell (503 = OUT_OF_SERVICE).
    #[error("HTTP {status}")]
    Server {
        /// The status.
        status: u16,
    },
    /// Another 4xx, with Finesse's errors.
    #[error("HTTP {status}: {errors:?}")]
    Client {
        /// The status.
        status: u16,
        /// The ApiErrors body.
        errors: Vec<ApiError>,
    },
    /// A 3xx: redirects are not followed, and never a success.
    #[error("HTTP {status}: a redirect, not an answer")]
    Redirected {
        /// The status.
        status: u16,
    },
    /// A body over `max_body`.
    #[error("response body over {0} bytes")]
    TooLarge(u64),
    /// A body that is not the expected document (e.g. a proxy's HTML page).
    #[error(transparent)]
    Malformed(#[from] XmlError),
}

impl RestError {
    /// The cause for logs, the state API and metrics.
    pub fn cause(&self) -> Cause {
        match self {
            Self::Transport(_) | Self::Ambiguous(_) => Cause::RestUnreachable,
            Self::Unauthorized => Cause::AuthFailed,
            Self::Server { status: 503 } => Cause::OutOfService,
            Self::Server { .. } => Cause::Rest5xx,
            Self::Client { .. } => Cause::Rest4xx,
            Self::Redirected { .. } => Cause::Rest3xx,
            Self::TooLarge(_) => Cause::RestOversized,
            Self::Malformed(_) => Cause::RestMalformed,
        }
    }
}

/// Result of a Media PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// 202: accepted; the outcome arrives as a notification.
    Accepted,
    /// 400 with E_ARM_STAT_AGENT_ALREADY_LOGGED_IN: settings reset, state untouched.
    AlreadyLoggedIn,
}

/// The three sign-in settings of one MRD, as a sign-in sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn {
    /// The MRD.
    pub mrd: u32,
    /// `maxDialogLimit`.
    pub max_dialog_limit: u32,
    /// `interruptAction`.
    pub interrupt_action: InterruptAction,
    /// `dialogLogoutAction`.
    pub dialog_logout_action: LogoutAction,
}

/// The REST client for one agent.
#[derive(Clone)]
pub struct Rest {
    pub(super) http: reqwest::Client,
    pub(super) user: String,
    credentials: Credentials,
    pub(super) max_body: u64,
    throttle: Option<std::sync::Arc<dyn crate::throttle::Throttle>>,
    info: Option<std::sync::Arc<SystemInfoCache>>,
}

impl Rest {
    /// A client over `tls` (see [`crate::tls`]), each request bounded by `timeouts`.
    pub fn new(
        user: &str,
        credentials: Credentials,
        tls: &rustls::ClientConfig,
        timeouts: crate::tls::HttpSettings,
        max_body: u64,
    ) -> Result<Self, crate::tls::TlsError> {
        let http = crate::tls::http_client(tls, timeouts)?;
        Ok(Self {
            http,
            user: user.to_owned(),
            credentials,
            max_body,
            throttle: None,
            info: None,
        })
    }

    /// A client on an HTTP client and SystemInfo answers shared with other agents (a fleet's):
    /// nothing is built.
    pub fn on_shared(
        user: &str,
        credentials: Credentials,
        http: reqwest::Client,
        info: std::sync::Arc<SystemInfoCache>,
        max_body: u64,
    ) -> Self {
        Self {
            http,
            user: user.to_owned(),
            credentials,
            max_body,
            throttle: None,
            info: Some(info),
        }
    }

    /// The same client, each request waiting for `throttle` (a fleet's cap).
    pub fn with_throttle(
        mut self,
        throttle: Option<std::sync::Arc<dyn crate::throttle::Throttle>>,
    ) -> Self {
        self.throttle = throttle;
        self
    }

    pub(super) async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<(String, &str)>,
        auth: bool,
    ) -> Result<(u16, String), RestError> {
        let sends_body = body.is_some();
        let mut req = self.http.request(method, url);
        if auth {
            req = match &self.credentials {
                Credentials::Basic(password) => req.basic_auth(&self.user, Some(password.expose())),
                Credentials::Bearer(cell) => req.bearer_auth(cell.current().expose()),
            };
        }
        if let Some((b, request_id)) = body {
            req = req
                .header("content-type", "application/xml")
                .header("requestId", request_id)
                .body(b);
        }
        let (status, text) = self.send(req, sends_body).await?;
        match status {
            401 => Err(RestError::Unauthorized),
            500..=599 => Err(RestError::Server { status }),
            300..=399 => Err(RestError::Redirected { status }),
            400..=499 => Err(RestError::Client {
                status,
                errors: ApiErrors::parse(&text)
                    .map(|e| e.errors)
                    .unwrap_or_default(),
            }),
            _ => Ok((status, text)),
        }
    }

    /// Sends `req` and reads the body (capped at `max_body`), whatever the status.
    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        sends_body: bool,
    ) -> Result<(u16, String), RestError> {
        if let Some(t) = &self.throttle {
            t.request().await;
        }
        let mut resp = req.send().await.map_err(|e| {
            // The URL can carry a secret (SSO's query-form refresh): never in an error.
            let e = e.without_url();
            // Only a request that never reached a connection surely was not sent.
            if sends_body && !e.is_connect() {
                RestError::Ambiguous(error_chain(&e))
            } else {
                RestError::Transport(error_chain(&e))
            }
        })?;
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n > self.max_body) {
            return Err(RestError::TooLarge(self.max_body));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| RestError::Transport(error_chain(&e.without_url())))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(RestError::TooLarge(self.max_body));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    pub(super) fn url(node: &Url, path: &str) -> Url {
        let mut u = node.clone();
        u.set_path(path);
        u
    }

    /// `GET /finesse/api/User/{id}/Media/{mrd}`.
    pub async fn media(&self, node: &Url, mrd: u32) -> Result<Media, RestError> {
        let path = format!("/finesse/api/User/{}/Media/{mrd}", self.user);
        let (_, body) = self
            .call(Method::GET, Self::url(node, &path), None, true)
            .await?;
        let media = Media::parse(&body)?;
        if media.mrd().is_none() {
            return Err(RestError::Malformed(XmlError {
                what: "Media",
                message: "no <id>".into(),
            }));
        }
        Ok(media)
    }

    async fn put_media(&self, node: &Url, mrd: u32, body: String) -> Result<PutOutcome, RestError> {
        self.put_media_as(node, mrd, body, &request_id()).await
    }

    async fn put_media_as(
        &self,
        node: &Url,
        mrd: u32,
        body: String,
        request_id: &str,
    ) -> Result<PutOutcome, RestError> {
        let path = format!("/finesse/api/User/{}/Media/{mrd}", self.user);
        match self
            .call(
                Method::PUT,
                Self::url(node, &path),
                Some((body, request_id)),
                true,
            )
            .await
        {
            Ok(_) => Ok(PutOutcome::Accepted),
            Err(RestError::Client { errors, .. })
                if errors.iter().any(ApiError::is_already_logged_in) =>
            {
                Ok(PutOutcome::AlreadyLoggedIn)
            }
            Err(e) => Err(e),
        }
    }

    /// Sign in (state LOGIN with the three settings) with `request_id`, which an
    /// asynchronous error about it echoes.
    pub async fn sign_in(
        &self,
        node: &Url,
        m: SignIn,
        request_id: &str,
    ) -> Result<PutOutcome, RestError> {
        // A fleet spreads its sign-ins under its cap's login bucket (the slot is held until
        // Finesse answers).
        let _slot = match &self.throttle {
            Some(t) => Some(t.login().await),
            None => None,
        };
        let body = format!(
            "<Media><state>LOGIN</state><maxDialogLimit>{}</maxDialogLimit><interruptAction>{}</interruptAction><dialogLogoutAction>{}</dialogLogoutAction></Media>",
            m.max_dialog_limit, m.interrupt_action, m.dialog_logout_action
        );
        self.put_media_as(node, m.mrd, body, request_id).await
    }

    /// READY, or NOT_READY with a reason code.
    pub async fn set_state(
        &self,
        node: &Url,
        mrd: u32,
        state: &str,
        reason: Option<u32>,
    ) -> Result<PutOutcome, RestError> {
        self.set_state_as(node, mrd, state, reason, &request_id())
            .await
    }

    /// [`Self::set_state`] with `request_id`, which an asynchronous refusal echoes.
    pub async fn set_state_as(
        &self,
        node: &Url,
        mrd: u32,
        state: &str,
        reason: Option<u32>,
        request_id: &str,
    ) -> Result<PutOutcome, RestError> {
        let reason = reason
            .map(|r| format!("<reasonCodeId>{r}</reasonCodeId>"))
            .unwrap_or_default();
        self.put_media_as(
            node,
            mrd,
            format!("<Media><state>{state}</state>{reason}</Media>"),
            request_id,
        )
        .await
    }

    /// Routable or not.
    pub async fn set_routable(
        &self,
        node: &Url,
        mrd: u32,
        routable: bool,
    ) -> Result<PutOutcome, RestError> {
        self.put_media(
            node,
            mrd,
            format!("<Media><routable>{routable}</routable></Media>"),
        )
        .await
    }

    /// `PUT /finesse/api/Dialog/{id}` with a requested action and `request_id`, which an
    /// asynchronous refusal echoes. `targetMediaAddress` is the agent (harmless if ignored);
    /// a TRANSFER's target (a script selector or number) goes in the element `target_element`
    /// (default `toAddress`, the voice transfer's; the nonvoice element is not documented).
    pub async fn dialog_action(
        &self,
        node: &Url,
        id: &str,
        action: DialogAction,
        target: Option<(&str, &str)>,
        request_id: &str,
    ) -> Result<(), RestError> {
        let path = format!("/finesse/api/Dialog/{id}");
        let me = quick_xml::escape::escape(self.user.as_str()).into_owned();
        let to = match target {
            Some((element, value)) if action == DialogAction::Transfer => {
                let value = quick_xml::escape::escape(value);
                format!("<{element}>{value}</{element}>")
            }
            _ => String::new(),
        };
        let body = format!(
            "<Dialog><requestedAction>{action}</requestedAction><targetMediaAddress>{me}</targetMediaAddress>{to}</Dialog>"
        );
        let status = self
            .call(
                Method::PUT,
                Self::url(node, &path),
                Some((body, request_id)),
                true,
            )
            .await?
            .0;
        if (300..400).contains(&status) {
            // A redirect is not an outcome: the action was not carried out here.
            return Err(RestError::Client {
                status,
                errors: Vec::new(),
            });
        }
        Ok(())
    }

    /// The nonvoice Dialog LIST of one MRD.
    pub async fn dialogs(&self, node: &Url, mrd: u32) -> Result<Vec<Dialog>, RestError> {
        let path = format!("/finesse/api/User/{}/Media/{mrd}/Dialogs", self.user);
        let (_, body) = self
            .call(Method::GET, Self::url(node, &path), None, true)
            .await?;
        let list = Dialogs::parse(&body)?;
        if list.dialogs.iter().any(|d| d.id.trim().is_empty()) {
            return Err(RestError::Malformed(XmlError {
                what: "Dialogs",
                message: "a dialog without <id>".into(),
            }));
        }
        Ok(list.dialogs)
    }
}

/// A fresh `requestId` for a PUT.
pub fn request_id() -> String {
    format!("taskd-{:016x}", rand::random::<u64>())
}

/// An error with its sources, on one line (reqwest's Display hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        // A wrapper that already prints its source ("I/O error: {e}") is not repeated.
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

impl Rest {
    /// `GET /finesse/api/SystemInfo`: without credentials first (direct access needs none),
    /// and once more with them when that is refused with 401 (12.6's VPN-less proxy
    /// authenticates it).
    /// In a fleet, the answer without credentials is shared ([`super::answer_cache`]).
    pub async fn system_info(&self, node: &Url) -> Result<SystemInfo, RestError> {
        let url = Self::url(node, "/finesse/api/SystemInfo");
        let anonymous = || self.system_info_at(url.clone(), false);
        let answer = match &self.info {
            Some(share) => share.get(&url, anonymous).await,
            None => anonymous().await,
        };
        match answer {
            Err(RestError::Unauthorized) => self.system_info_at(url, true).await,
            other => other,
        }
    }

    async fn system_info_at(&self, url: Url, auth: bool) -> Result<SystemInfo, RestError> {
        let (_, body) = self.call(Method::GET, url, None, auth).await?;
        let info = SystemInfo::parse(&body)?;
        if info.status.is_empty() {
            return Err(RestError::Malformed(XmlError {
                what: "SystemInfo",
                message: "no <status>".into(),
            }));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod chain_tests {
    use super::error_chain;

    #[test]
    fn a_source_the_wrapper_already_prints_is_not_repeated() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the XMPP connection did not finish",
        );
        let wrapped = tokio_xmpp::Error::Io(inner);
        assert_eq!(
            error_chain(&wrapped),
            "I/O error: the XMPP connection did not finish"
        );
        // A source that adds something is kept.
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connect failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let outer = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&outer), "connect failed: refused");
    }
}
