//! The HTTP server: routes, and the handlers that put generation and
//! rendering on the worker pool and ask the pipeline for its state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use amt_stages::audio::{AudioError, Synth};
use amt_stages::generate::{Generator, Stopped};

use crate::access::Access;
use crate::api::{ApiError, GenerateRequest, parse_json};
use crate::model::SharedGenerator;
use crate::piece;
use crate::pipeline::Pipeline;
use crate::pool::{Outcome, Pool, Refused};
use crate::results::{ResultId, Results};

/// The largest MIDI file `POST /api/render` accepts.
pub const MAX_MIDI_BYTES: usize = 4 << 20;
/// The longest piece rendered to audio, in seconds: a render holds about
/// 12 bytes a frame at its peak (f32 stereo, then the WAV), so 5 minutes is
/// about 160 MB per worker.
pub const MAX_AUDIO_SECONDS: f64 = 300.0;
/// The most results one `GET /api/results` lists.
const MAX_LISTED: usize = 200;

/// How the server runs.
pub struct Settings {
    pub workers: usize,
    pub queue: usize,
    /// How long one generate or render request may take, queue included.
    pub deadline: Duration,
    /// Bytes of results kept.
    pub results_cap: usize,
}

/// What the handlers share.
pub struct Studio {
    generator: Result<Arc<SharedGenerator>, String>,
    synth: Result<Synth, String>,
    pipeline: Pipeline,
    pool: Pool,
    results: Results,
    deadline: Duration,
}

impl Studio {
    /// Puts the parts together; a missing model or SoundFont disables only
    /// what needs it, with the reason given on each request that does.
    pub fn new(
        generator: Result<Generator, String>,
        synth: Result<Synth, String>,
        pipeline: Pipeline,
        settings: &Settings,
    ) -> std::io::Result<Self> {
        Ok(Self {
            generator: generator.map(|g| Arc::new(SharedGenerator::new(g))),
            synth,
            pipeline,
            pool: Pool::new("studio-worker", settings.workers, settings.queue)?,
            results: Results::new(settings.results_cap),
            deadline: settings.deadline,
        })
    }
}

type Shared = State<Arc<Studio>>;

/// The routes: the two pages, their assets and the JSON API, behind `access`.
pub fn router(studio: Arc<Studio>, access: Access) -> Router {
    let api = Router::new()
        .route("/generate", post(generate))
        .route("/results", get(list_results))
        .route("/results/{id}", get(get_result))
        .route("/results/{id}/midi", get(get_midi))
        .route("/results/{id}/audio", get(get_audio))
        .route("/render", post(render))
        .route("/status", get(status))
        .route("/runs", get(runs))
        .route("/metrics", get(metrics))
        .route("/loss", get(loss))
        .route("/report", get(report))
        .route("/report/files/{*path}", get(report_file))
        .layer(DefaultBodyLimit::max(MAX_MIDI_BYTES));
    Router::new()
        .route("/", get(|| async { Html(crate::assets::WRITE_PAGE) }))
        .route(
            "/pipeline",
            get(|| async { Html(crate::assets::PIPELINE_PAGE) }),
        )
        .route("/assets/{name}", get(asset))
        .nest("/api", api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page or API route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method",
            )
        })
        .with_state(studio)
        .layer(middleware::from_fn_with_state(access, crate::access::check))
}

/// Serves `router` on an already bound listener until Ctrl-C or SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    let stop = async {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

async fn asset(Path(name): Path<String>) -> Response {
    match crate::assets::get(&name) {
        Some((mime, body)) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, format!("no asset {name:?}")).into_response(),
    }
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Busy { retry_after } => {
            let secs = retry_after.as_secs_f64().ceil() as u64;
            ApiError {
                retry_after: Some(secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("the studio is busy: try again in {secs} s"),
                )
            }
        }
        Refused::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the studio is shutting down",
        ),
    }
}

fn timed_out(what: &str, deadline: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "{what} took longer than the studio's deadline of {:.1} s",
            deadline.as_secs_f64()
        ),
    )
}

fn panicked(what: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("{what} failed: {why}"),
    )
}

/// The body, or a JSON error naming it (too large, cut off).
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| ApiError {
        field: Some("body".into()),
        ..ApiError::new(e.status(), e.body_text())
    })
}

/// Refuses a body whose Content-Type is not one of `accepted`. Besides
/// saying what is expected, this makes a cross-site POST need a CORS
/// preflight, which the studio never grants.
fn content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if accepted.iter().any(|a| a.eq_ignore_ascii_case(essence)) {
        return Ok(());
    }
    Err(ApiError {
        field: Some("content-type".into()),
        ..ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {given:?}: send {}", accepted.join(" or ")),
        )
    })
}

async fn generate(
    State(studio): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    content_type(&headers, &["application/json"])?;
    let request: GenerateRequest = parse_json(&body(raw)?)?;
    let generator = match &studio.generator {
        Ok(g) => Arc::clone(g),
        Err(why) => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.clone())),
    };
    let options = request.validate(generator.vocab_len(), generator.guidable())?;
    let deadline = Instant::now() + studio.deadline;
    let id = ResultId::random();
    let job = move |ticket: &crate::pool::Ticket| {
        let started = Instant::now();
        let g = generator.generate_unless(&request.text, &options, &|| ticket.should_stop())?;
        let mut piece = piece::describe(&g, &options, started.elapsed())?;
        piece["id"] = json!(id);
        piece["midi"] = json!(format!("/api/results/{id}/midi"));
        piece["audio"] = json!(format!("/api/results/{id}/audio"));
        Ok::<_, anyhow::Error>((g.midi, serde_json::to_vec(&piece)?))
    };
    let answer = studio.pool.submit(deadline, job).map_err(refused)?;
    let (midi, piece) = match answer.await {
        Outcome::Done(Ok(done)) => done,
        Outcome::Done(Err(e)) if e.is::<Stopped>() => {
            return Err(timed_out("generating", studio.deadline));
        }
        Outcome::Done(Err(e)) => return Err(ApiError::internal(&e)),
        Outcome::TimedOut => return Err(timed_out("generating", studio.deadline)),
        Outcome::Panicked(why) => return Err(panicked("generating", &why)),
    };
    let piece = Bytes::from(piece);
    if !studio.results.insert(id, piece.clone(), Bytes::from(midi)) {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "the piece is larger than --results-mib allows to keep",
        ));
    }
    Ok(json_bytes(piece))
}

/// A response from JSON already serialized.
fn json_bytes(json: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

fn result_id(id: Result<Path<String>, PathRejection>) -> Result<ResultId, ApiError> {
    let Path(id) = id.map_err(|e| ApiError {
        field: Some("id".into()),
        ..ApiError::new(
            StatusCode::NOT_FOUND,
            format!("not a result id: {}", e.body_text()),
        )
    })?;
    ResultId::parse(&id).ok_or_else(|| ApiError::no_result(&id))
}

fn kept(studio: &Studio, id: ResultId) -> Result<crate::results::Entry, ApiError> {
    studio
        .results
        .get(id)
        .ok_or_else(|| ApiError::no_result(&id.to_string()))
}

/// Reads `?last=N` (1..=max, default `default`) and nothing else but the token.
fn last_param(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut last = default;
    for (key, value) in &query {
        match key.as_str() {
            "last" => {
                last = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::field(
                            "last",
                            format!("last must be a whole number in [1, {max}], not {value:?}"),
                        )
                    })?;
            }
            "token" => {}
            other => {
                return Err(ApiError::field(
                    other,
                    format!("unknown parameter {other:?}; the one known is `last`"),
                ));
            }
        }
    }
    Ok(last)
}

async fn list_results(
    State(studio): Shared,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let last = last_param(query, 50, MAX_LISTED)?;
    let pieces = studio.results.newest(last);
    // The pieces are JSON text already: joined, not parsed again.
    let mut out = Vec::with_capacity(pieces.iter().map(Bytes::len).sum::<usize>() + 64);
    out.extend_from_slice(b"{\"results\":[");
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(
        format!(
            "],\"kept\":{},\"bytes\":{}}}",
            studio.results.count(),
            studio.results.bytes()
        )
        .as_bytes(),
    );
    Ok(json_bytes(Bytes::from(out)))
}

async fn get_result(
    State(studio): Shared,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    Ok(json_bytes(kept(&studio, result_id(id)?)?.piece))
}

async fn get_midi(
    State(studio): Shared,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = result_id(id)?;
    let midi = kept(&studio, id)?.midi;
    let disposition = format!("attachment; filename=\"amt-{id}.mid\"");
    Ok(ranged(&headers, midi, "audio/midi", Some(disposition)))
}

/// Renders MIDI bytes on the pool; `field` names what the MIDI came from
/// when it is the client's.
async fn render_on_pool(
    studio: &Studio,
    midi: Bytes,
    field: Option<&str>,
) -> Result<Bytes, ApiError> {
    let synth = match &studio.synth {
        Ok(s) => s.clone(),
        Err(why) => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.clone())),
    };
    let deadline = Instant::now() + studio.deadline;
    let job = move |ticket: &crate::pool::Ticket| {
        synth
            .render_unless(&midi, &|| ticket.should_stop())
            .and_then(|a| a.wav_bytes())
    };
    let answer = studio.pool.submit(deadline, job).map_err(refused)?;
    match answer.await {
        Outcome::Done(Ok(wav)) => Ok(Bytes::from(wav)),
        Outcome::Done(Err(AudioError::Stopped)) | Outcome::TimedOut => {
            Err(timed_out("rendering", studio.deadline))
        }
        // The client's own file: its fault, and the field says which. The
        // studio's own pieces failing is the studio's fault (500, below).
        Outcome::Done(Err(
            e @ (AudioError::TooLong { .. } | AudioError::Midi(_) | AudioError::Crashed(_)),
        )) if field.is_some() => Err(ApiError {
            field: field.map(str::to_owned),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }),
        Outcome::Done(Err(e)) => Err(ApiError::internal(&e.into())),
        Outcome::Panicked(why) => Err(panicked("rendering", &why)),
    }
}

async fn get_audio(
    State(studio): Shared,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = result_id(id)?;
    let entry = kept(&studio, id)?;
    let wav = match entry.wav {
        Some(wav) => wav,
        None => {
            let wav = render_on_pool(&studio, entry.midi, None).await?;
            studio.results.set_wav(id, wav.clone());
            wav
        }
    };
    Ok(ranged(&headers, wav, "audio/wav", None))
}

/// `POST /api/render` with a MIDI file as the body: its audio as WAV.
async fn render(
    State(studio): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    content_type(
        &headers,
        &["audio/midi", "audio/x-midi", "application/octet-stream"],
    )?;
    let wav = render_on_pool(&studio, body(raw)?, Some("body")).await?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response())
}

async fn status(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    let mut status = (*studio.pipeline.status().await?).clone();
    status["model"] = json!(studio.generator.is_ok());
    status["audio"] = json!(studio.synth.is_ok());
    status["workers"] = json!(studio.pool.workers());
    status["pending"] = json!(studio.pool.pending());
    Ok(axum::Json(status))
}

async fn runs(
    State(studio): Shared,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let last = last_param(query, 20, 1000)?;
    Ok(axum::Json((*studio.pipeline.runs(last).await?).clone()))
}

async fn metrics(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(studio.pipeline.metrics().await?))
}

async fn loss(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!({ "rows": studio.pipeline.loss().await? })))
}

async fn report(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        json!({ "html": studio.pipeline.report_html().await? }),
    ))
}

async fn report_file(
    State(studio): Shared,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let not_found = |why: String| ApiError {
        field: Some("path".into()),
        ..ApiError::new(StatusCode::NOT_FOUND, why)
    };
    let Path(path) =
        path.map_err(|e| not_found(format!("not a report file: {}", e.body_text())))?;
    let Some((file, mime)) = studio.pipeline.report_file(&path).await? else {
        return Err(not_found(format!("the report has no file {path:?}")));
    };
    let bytes = tokio::fs::read(&file).await.map_err(|e| {
        ApiError::internal(&anyhow::Error::new(e).context(file.display().to_string()))
    })?;
    Ok(ranged(&headers, Bytes::from(bytes), mime, None))
}

/// A body, or the one range the request asks for (`Range: bytes=A-B`, `A-`
/// or `-N`): what an audio player needs to seek. Any other Range gets the
/// whole body; one past the end gets 416.
fn ranged(
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
