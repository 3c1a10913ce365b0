//! Authentication as Finesse answers it: Basic (the lockout counted in the truth) or, in SSO
//! mode, Bearer tokens checked by the IdS ([`crate::ids`]) with their expiry (and Basic
//! refused); the user in the URI checked against the credentials; and the `requestId` echo.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine as _;
use tokio::time::Instant;

use super::{NodeState, error_response};
use crate::cluster::lock;
use crate::truth::AuthFailure;

pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The Bearer token of a request, if it carries one.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(|t| t.trim().to_owned())
}

/// The scheme a request authenticated with, for the request log.
pub(super) fn scheme(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    Some(value.split(' ').next().unwrap_or("").to_ascii_lowercase())
}

fn unauthorized(message: &str) -> Box<Response> {
    Box::new(error_response(401, "Authorization Failure", message, ""))
}

/// Checks the credentials (Basic, or Bearer in SSO mode); `owner` is the user id in the
/// URI, which must match.
pub(super) fn authenticate(
    st: &NodeState,
    headers: &HeaderMap,
    owner: Option<&str>,
) -> Result<String, Box<Response>> {
    if lock(&st.cluster.ids).enabled {
        let Some(token) = bearer_token(headers) else {
            return Err(unauthorized(
                "single sign-on is enabled: a Bearer token is required",
            ));
        };
        let user = lock(&st.cluster.ids)
            .check(&token, std::time::SystemTime::now())
            .map_err(|r| unauthorized(r.message()))?;
        return owned(user, owner);
    }
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(Box::new(error_response(
            401,
            "Authorization Failure",
            "credentials required",
            "",
        )));
    };
    let result = lock(&st.cluster.truth).authenticate(&user, &password, Instant::now());
    match result {
        Ok(()) => {}
        Err(AuthFailure::Locked) => {
            return Err(Box::new(error_response(
                401,
                "Authorization Failure",
                "account locked",
                "",
            )));
        }
        Err(AuthFailure::UnknownUser | AuthFailure::BadPassword) => {
            return Err(Box::new(error_response(
                401,
                "Authorization Failure",
                "invalid credentials",
                "",
            )));
        }
    }
    owned(user, owner)
}

fn owned(user: String, owner: Option<&str>) -> Result<String, Box<Response>> {
    if owner.is_some_and(|o| o != user) {
        return Err(Box::new(error_response(
            401,
            "Invalid Authorization User Specified",
            &format!("the authenticated user {user} does not match the user in the URI"),
            "1002001",
        )));
    }
    Ok(user)
}

pub(super) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("requestId")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

pub(super) fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        if !request_id.is_empty() {
            response.headers_mut().insert("requestId", v);
        }
    }
    response
}
