//! Who may use the studio: the token, the Host check that keeps other web
//! sites out of a loopback studio without one, and the headers that keep
//! the pages from loading anything but their own code.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::ApiError;

/// What a request must show.
#[derive(Clone, Debug)]
pub enum Access {
    /// `Authorization: Bearer TOKEN`, or `?token=TOKEN` on links the browser
    /// follows itself (audio, MIDI, images).
    Token(String),
    /// No token: only these `Host` values (the loopback names of the bound
    /// address). A page on another site can make the browser send requests
    /// here, or rebind its own name to 127.0.0.1; either way its Host is not one of these.
    Hosts(Vec<String>),
}

impl Access {
    /// Loopback names for a studio bound to `port` with no token.
    pub fn loopback(port: u16) -> Self {
        Access::Hosts(vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ])
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The check, on every route.
pub async fn check(
    State(access): State<Access>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let refused = |status, field: &str, message: &str| {
        let mut e = ApiError::new(status, message);
        e.field = Some(field.to_owned());
        e.into_response()
    };
    match &access {
        Access::Token(expected) => {
            // The pages carry no data and load without it; they ask for it.
            let is_api = request.uri().path().starts_with("/api/");
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let from_query = query.as_ref().ok().and_then(|q| q.token.as_deref());
            let given = bearer.or(from_query);
            if is_api && !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
            {
                return refused(
                    StatusCode::UNAUTHORIZED,
                    "token",
                    "this studio needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN",
                );
            }
        }
        Access::Hosts(allowed) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
                return refused(
                    StatusCode::FORBIDDEN,
                    "host",
                    &format!(
                        "Host {host:?} is not this studio's address ({}); serve with --token to reach it by another name",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self'; \
             style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
