//! The JSON API's contract: requests parsed and validated at the edge, and
//! errors as `{"error": "…", "field": "…"}` with a 4xx or 5xx status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use amt_stages::generate::SampleOptions;

/// The longest prompt accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;
/// The most music tokens one request may ask for.
pub const MAX_TOKENS: usize = 4096;
/// The highest temperature accepted.
pub const MAX_TEMPERATURE: f64 = 5.0;
/// The largest guidance scale a request may ask for (as `amt generate`).
pub const MAX_GUIDANCE: f64 = 20.0;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// Seconds to wait before trying again (429).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A 400 naming the field at fault.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    /// A 404 for an id that names no result.
    pub fn no_result(id: &str) -> Self {
        Self {
            field: Some("id".into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                format!("no result {id:?} (results are kept while they fit the cap)"),
            )
        }
    }

    /// A 500 for a failure on the server's side.
    pub fn internal(e: &anyhow::Error) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            field: self.field.as_deref(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Parses a JSON body into `T`, naming the field at fault when it does not fit.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde reports unknown, missing and repeated fields at their parent:
        // name the field itself, which its message quotes.
        let quoted = ["unknown field `", "missing field `", "duplicate field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        // "." is the whole body, "?" a place serde could not name (a syntax error).
        let field = quoted.or_else(|| (path != "." && path != "?").then_some(path));
        ApiError {
            field,
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {message}"),
            )
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })?;
    Ok(value)
}

/// `POST /api/generate`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// What the music should be like.
    pub text: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "defaults::temperature")]
    pub temperature: f64,
    #[serde(default)]
    pub top_k: usize,
    #[serde(default = "defaults::top_p")]
    pub top_p: f64,
    #[serde(default = "defaults::max_tokens")]
    pub max_tokens: usize,
    /// Classifier-free guidance scale (1: the model as trained; default 2).
    #[serde(default = "defaults::guidance")]
    pub guidance: f64,
    /// Write the tempo, meter and instruments the text names exactly.
    #[serde(default)]
    pub strict: bool,
}

mod defaults {
    use amt_stages::generate::SampleOptions;

    pub fn temperature() -> f64 {
        SampleOptions::default().temperature
    }
    pub fn top_p() -> f64 {
        SampleOptions::default().top_p
    }
    pub fn max_tokens() -> usize {
        SampleOptions::default().max_tokens
    }
    pub fn guidance() -> f64 {
        SampleOptions::default().guidance
    }
}

impl GenerateRequest {
    /// Checks every field's range against a model with `vocab_size` tokens
    /// that can (`guidable`) or cannot be guided; the error names the first
    /// field out of range.
    pub fn validate(&self, vocab_size: usize, guidable: bool) -> Result<SampleOptions, ApiError> {
        let chars = self.text.chars().count();
        if self.text.trim().is_empty() {
            return Err(ApiError::field(
                "text",
                "text is empty: say what the music should be like",
            ));
        }
        if chars > MAX_TEXT_CHARS {
            return Err(ApiError::field(
                "text",
                format!("text has {chars} characters; at most {MAX_TEXT_CHARS}"),
            ));
        }
        if !(0.0..=MAX_TEMPERATURE).contains(&self.temperature) {
            return Err(ApiError::field(
                "temperature",
                format!(
                    "temperature must be in [0, {MAX_TEMPERATURE}], not {}",
                    self.temperature
                ),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ApiError::field(
                "top_p",
                format!("top_p must be in (0, 1], not {}", self.top_p),
            ));
        }
        if self.top_k > vocab_size {
            return Err(ApiError::field(
                "top_k",
                format!(
                    "top_k must be at most the vocabulary's {vocab_size} (0: all), not {}",
                    self.top_k
                ),
            ));
        }
        if !(1..=MAX_TOKENS).contains(&self.max_tokens) {
            return Err(ApiError::field(
                "max_tokens",
                format!(
                    "max_tokens must be in [1, {MAX_TOKENS}], not {}",
                    self.max_tokens
                ),
            ));
        }
        if !(0.0..=MAX_GUIDANCE).contains(&self.guidance) {
            return Err(ApiError::field(
                "guidance",
                format!("guidance must be in [0, {MAX_GUIDANCE}], not {}", self.guidance),
            ));
        }
        if self.guidance != 1.0 && !guidable {
            return Err(ApiError::field(
                "guidance",
                "this model was trained without unconditioned windows (train.uncondition = 0): guidance must be 1",
            ));
        }
        Ok(SampleOptions {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: self.seed,
            guidance: self.guidance,
            strict: self.strict,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Result<GenerateRequest, ApiError> {
        parse_json(body.as_bytes())
    }

    #[test]
    fn an_unknown_field_is_named() {
        let e = request(r#"{"text": "x", "temprature": 1}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("temprature"));
    }

    #[test]
    fn a_mistyped_field_is_named() {
        let e = request(r#"{"text": "x", "seed": "seven"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("seed"));
        let e = request(r#"{not json"#).unwrap_err();
        assert_eq!(e.field, None, "{}", e.message);
        let e = request(r#"{"seed": 1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("text"), "{}", e.message);
        let e = request(r#"{"text": "a", "text": "b"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("text"), "{}", e.message);
        let e = request(r#"{"text": "a"} trailing"#).unwrap_err();
        assert!(e.message.contains("trailing"), "{}", e.message);
    }

    #[test]
    fn ranges_are_checked_field_by_field() {
        let ok = request(r#"{"text": "a jig"}"#).unwrap();
        assert_eq!(ok.validate(300, true).unwrap(), SampleOptions::default());
        for (body, field) in [
            (r#"{"text": "  "}"#, "text"),
            (r#"{"text": "a", "temperature": -1}"#, "temperature"),
            (r#"{"text": "a", "top_p": 0}"#, "top_p"),
            (r#"{"text": "a", "top_p": 1.5}"#, "top_p"),
            (r#"{"text": "a", "top_k": 301}"#, "top_k"),
            (r#"{"text": "a", "max_tokens": 0}"#, "max_tokens"),
            (r#"{"text": "a", "max_tokens": 100000}"#, "max_tokens"),
            (r#"{"text": "a", "guidance": -1}"#, "guidance"),
            (r#"{"text": "a", "guidance": 21}"#, "guidance"),
        ] {
            let e = request(body).unwrap().validate(300, true).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {}", e.message);
        }
        let long = format!(r#"{{"text": "{}"}}"#, "a".repeat(MAX_TEXT_CHARS + 1));
        assert_eq!(
            request(&long)
                .unwrap()
                .validate(300, true)
                .unwrap_err()
                .field
                .as_deref(),
            Some("text")
        );
        // A model that never trained unconditioned takes guidance 1 only,
        // and the default asks for more.
        let e = ok.validate(300, false).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("guidance"), "{}", e.message);
        let unguided = request(r#"{"text": "a jig", "guidance": 1}"#).unwrap();
        assert_eq!(unguided.validate(300, false).unwrap().guidance, 1.0);
    }
}
