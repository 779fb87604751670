//! HTTP byte ranges: browsers' audio elements ask for parts of a file, and
//! get `206 Partial Content` (one range) or the whole file.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// A body, or the one range the request asks for (`Range: bytes=A-B`, `A-`
/// or `-N`): what an audio player needs to seek. Any other Range gets the
/// whole body; one past the end gets 416.
pub(super) fn ranged(
    headers: &HeaderMap,
    bytes: Bytes,
    mime: &'static str,
    disposition: Option<String>,
) -> Response {
    let len = bytes.len();
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(Range::Whole, |r| byte_range(r, len));
    let mut response = match asked {
        Range::Whole => (StatusCode::OK, bytes).into_response(),
        Range::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the body has {len} bytes"),
            )
            .into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                content_range(&format!("bytes */{len}")),
            );
            return r;
        }
        Range::Part(a, b) => {
            let mut r = (StatusCode::PARTIAL_CONTENT, bytes.slice(a..=b)).into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                content_range(&format!("bytes {a}-{b}/{len}")),
            );
            r
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(d) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    response
}

fn content_range(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Bytes `a..=b`.
    Part(usize, usize),
    Unsatisfiable,
    /// Not one byte range: answered with the whole body.
    Whole,
}

fn byte_range(header: &str, len: usize) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Whole;
    };
    let Some((a, b)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Range::Whole;
    };
    let last = len.saturating_sub(1);
    let (start, end) = match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
        (Ok(a), Ok(b)) if a <= b => (a, b.min(last)),
        (Ok(a), Err(_)) if b.trim().is_empty() => (a, last),
        (Err(_), Ok(n)) if a.trim().is_empty() && n > 0 => (len.saturating_sub(n), last),
        _ => return Range::Whole,
    };
    if start >= len {
        return Range::Unsatisfiable;
    }
    Range::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_players_send_them() {
        assert_eq!(byte_range("bytes=0-", 100), Range::Part(0, 99));
        assert_eq!(byte_range("bytes=10-19", 100), Range::Part(10, 19));
        assert_eq!(byte_range("bytes=90-200", 100), Range::Part(90, 99));
        assert_eq!(byte_range("bytes=-10", 100), Range::Part(90, 99));
        assert_eq!(byte_range("bytes=-500", 100), Range::Part(0, 99));
        assert_eq!(byte_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=5-1", 100), Range::Whole);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Range::Whole);
        assert_eq!(byte_range("items=0-1", 100), Range::Whole);
    }
}
