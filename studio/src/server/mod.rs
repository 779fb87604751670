//! The HTTP server: routes, errors, and the handlers that ask the pipeline
//! for its state; `music.rs` has those that put generation and rendering on
//! the worker pool, `range.rs` the byte ranges players ask for.

mod music;
mod range;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use amt_stages::audio::Synth;
use amt_stages::generate::Generator;

use crate::access::Access;
use crate::api::ApiError;
use crate::model::SharedGenerator;
use crate::pipeline::Pipeline;
use crate::pool::{Pool, Refused};
use crate::results::Results;
use music::{generate, get_audio, get_midi, get_result, list_results, render};
use range::ranged;

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

/// Why a part of the studio is off; each request that needs it is told.
#[derive(Debug, thiserror::Error)]
pub enum Off {
    #[error("no model to generate with: {0:#} (run `amt run train` first)")]
    Model(anyhow::Error),
    #[error("no audio: {0:#}")]
    Audio(anyhow::Error),
}

/// What the handlers share.
pub struct Studio {
    generator: Result<Arc<SharedGenerator>, Off>,
    synth: Result<Synth, Off>,
    pipeline: Pipeline,
    pool: Pool,
    results: Results,
    deadline: Duration,
}

impl Studio {
    /// Puts the parts together; a missing model or SoundFont disables only
    /// what needs it, with the reason given on each request that does.
    pub fn new(
        generator: Result<Generator, Off>,
        synth: Result<Synth, Off>,
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
