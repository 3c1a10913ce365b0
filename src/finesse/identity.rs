//! SSO's two REST calls: the token refresh (Cisco's developer guide: `POST
//! /desktop/sso/token`, form-encoded `token=` and `refresh-token=`; its tech note's query form
//! as a fallback) and the loginName → loginId lookup (`GET /finesse/api/User/<loginName>`).
//! The refresh answer is returned as text for [`crate::sso::token::TokenSet::refreshed`];
//! refusals say whether the IdS called the pair expired.

use reqwest::{Method, Url};

use super::rest::{Rest, RestError};
use crate::sso::token::TokenSet;

/// The IdS's path for fetching and refreshing tokens.
const TOKEN_PATH: &str = "/desktop/sso/token";

/// A refresh that did not produce a token.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// 401 (or another refusal of the pair): `expired` when the answer says the refresh token
    /// has expired.
    #[error("refresh refused (HTTP {status}){}", if *.expired { ": the refresh token has expired" } else { "" })]
    Refused {
        /// The status.
        status: u16,
        /// The answer says the refresh token expired.
        expired: bool,
    },
    /// Unreachable, 5xx, oversized: worth another try before the token expires.
    #[error(transparent)]
    Failed(RestError),
}

fn says_expired(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("expired") || b.contains("invalid_grant")
}

impl Rest {
    /// Refreshes `tokens` at `node`; the 200 answer's body. With `query_fallback`, a POST
    /// answered 400, 404 or 405 is tried once as a GET with query parameters.
    pub async fn refresh_sso(
        &self,
        node: &Url,
        tokens: &TokenSet,
        query_fallback: bool,
    ) -> Result<zeroize::Zeroizing<String>, RefreshError> {
        let url = Self::url(node, TOKEN_PATH);
        let form = [
            ("token", tokens.token.expose()),
            ("refresh-token", tokens.refresh_token.expose()),
            ("return_user", "yes"),
        ];
        let post = self.http.request(Method::POST, url.clone()).form(&form);
        let (mut status, mut body) = self.send(post, true).await.map_err(RefreshError::Failed)?;
        if query_fallback && matches!(status, 400 | 404 | 405) {
            let query = [
                ("cc_username", self.user.as_str()),
                ("refresh-token", tokens.refresh_token.expose()),
            ];
            let get = self.http.request(Method::GET, url).query(&query);
            (status, body) = self.send(get, false).await.map_err(RefreshError::Failed)?;
        }
        let body = zeroize::Zeroizing::new(body);
        match status {
            200..=299 => Ok(body),
            500..=599 => Err(RefreshError::Failed(RestError::Server { status })),
            _ => Err(RefreshError::Refused {
                status,
                expired: says_expired(&body),
            }),
        }
    }

    /// The loginId of the user named `login_name` (`GET /finesse/api/User/<loginName>`).
    pub async fn login_id(&self, node: &Url, login_name: &str) -> Result<String, RestError> {
        let mut url = Self::url(node, "/finesse/api/User/");
        url.path_segments_mut()
            .map_err(|()| RestError::Transport("the node URL cannot take a path".into()))?
            .pop_if_empty()
            .push(login_name);
        let (_, body) = self.call(Method::GET, url, None, true).await?;
        super::model::User::parse(&body)?.login_id.ok_or_else(|| {
            RestError::Malformed(super::model::XmlError {
                what: "User",
                message: "no <loginId>".into(),
            })
        })
    }
}
