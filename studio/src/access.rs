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
    /// address), which keeps out a site that points its own name at
    /// 127.0.0.1 (DNS rebinding). A page on another site that makes the
    /// browser call the studio directly is refused by the browser's own
    /// `Sec-Fetch-Site` and `Origin` headers.
    Hosts(Vec<String>),
}

impl Access {
    /// The names a studio bound to loopback `addr` with no token answers to:
    /// the address itself and the loopback names, with its port (and
    /// without, on port 80, as browsers send them).
    pub fn loopback(addr: std::net::SocketAddr) -> Self {
        let port = addr.port();
        let mut names = vec![addr.to_string()];
        for name in ["127.0.0.1", "localhost", "[::1]"] {
            names.push(format!("{name}:{port}"));
            if port == 80 {
                names.push(name.to_owned());
            }
        }
        names.dedup();
        Access::Hosts(names)
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
            // Browsers say where a request comes from; only this studio's
            // own pages (or no browser at all: curl sends neither) may ask.
            let header = |name| {
                headers
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
            };
            let cross_site =
                header("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site");
            let foreign_origin = header("origin").is_some_and(|o| {
                let o = o.strip_prefix("http://").unwrap_or(o);
                !allowed.iter().any(|a| a.eq_ignore_ascii_case(o))
            });
            if cross_site || foreign_origin {
                return refused(
                    StatusCode::FORBIDDEN,
                    "origin",
                    "a page of another site may not use this studio",
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
    fn a_loopback_studio_answers_to_its_own_names() {
        let Access::Hosts(names) = Access::loopback("127.0.0.2:8800".parse().unwrap()) else {
            panic!()
        };
        assert_eq!(
            names,
            [
                "127.0.0.2:8800",
                "127.0.0.1:8800",
                "localhost:8800",
                "[::1]:8800"
            ]
        );
        let Access::Hosts(names) = Access::loopback("127.0.0.1:80".parse().unwrap()) else {
            panic!()
        };
        assert!(
            names.contains(&"localhost".to_owned()) && names.contains(&"127.0.0.1:80".to_owned())
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
