//! The HTTP server: routes, the token check, and the handlers that put
//! generation and rendering on the worker pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use amt_stages::audio::Synth;
use amt_stages::generate::{Generator, Stopped};

use crate::api::{ApiError, GenerateRequest, parse_json};
use crate::model::SharedGenerator;
use crate::piece;
use crate::pipeline::Pipeline;
use crate::pool::{Outcome, Pool};
use crate::results::{ResultId, Results};

/// The largest MIDI file `POST /api/render` accepts.
pub const MAX_MIDI_BYTES: usize = 4 << 20;
/// The longest piece rendered to audio, in seconds.
pub const MAX_AUDIO_SECONDS: f64 = 600.0;

/// How the server runs.
pub struct Settings {
    pub workers: usize,
    pub queue: usize,
    /// How long one generate or render request may take, queue included.
    pub deadline: Duration,
    /// Bytes of results kept.
    pub results_cap: usize,
    /// Required on every `/api` request when set.
    pub token: Option<String>,
}

/// What the handlers share.
pub struct Studio {
    generator: Option<Arc<SharedGenerator>>,
    /// Why there is no generator, to say so on each generate request.
    no_generator: String,
    synth: Option<Synth>,
    no_synth: String,
    pipeline: Pipeline,
    pool: Pool,
    results: Results,
    deadline: Duration,
    token: Option<String>,
}

impl Studio {
    /// Puts the parts together; a missing model or SoundFont disables only
    /// what needs it, with `why` said on each request that does.
    pub fn new(
        generator: Result<Generator, String>,
        synth: Result<Synth, String>,
        pipeline: Pipeline,
        settings: &Settings,
    ) -> std::io::Result<Self> {
        let (generator, no_generator) = match generator {
            Ok(g) => (Some(Arc::new(SharedGenerator::new(g))), String::new()),
            Err(why) => (None, why),
        };
        let (synth, no_synth) = match synth {
            Ok(s) => (Some(s), String::new()),
            Err(why) => (None, why),
        };
        Ok(Self {
            generator,
            no_generator,
            synth,
            no_synth,
            pipeline,
            pool: Pool::new("studio-worker", settings.workers, settings.queue)?,
            results: Results::new(settings.results_cap),
            deadline: settings.deadline,
            token: settings.token.clone(),
        })
    }
}

type Shared = State<Arc<Studio>>;

/// The routes: the two pages, their assets and the JSON API.
pub fn router(studio: Arc<Studio>) -> Router {
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
        .route("/report/files/{name}", get(report_file))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API route") })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&studio),
            check_token,
        ))
        .layer(DefaultBodyLimit::max(MAX_MIDI_BYTES));
    Router::new()
        .route("/", get(|| async { Html(crate::assets::WRITE_PAGE) }))
        .route(
            "/pipeline",
            get(|| async { Html(crate::assets::PIPELINE_PAGE) }),
        )
        .route("/assets/{name}", get(asset))
        .nest("/api", api)
        .with_state(studio)
}

/// Serves `router` on an already bound listener until Ctrl-C or SIGTERM.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let ctrl_c = tokio::signal::ctrl_c();
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = ctrl_c => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await
}

async fn asset(Path(name): Path<String>) -> Response {
    match crate::assets::get(&name) {
        Some((mime, body)) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, format!("no asset {name:?}")).into_response(),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// With a token set, every API request carries it: `Authorization: Bearer
/// TOKEN`, or `?token=TOKEN` for links the browser follows itself (audio, MIDI).
async fn check_token(
    State(studio): Shared,
    query: Result<Query<TokenQuery>, QueryRejection>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &studio.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let from_query = query.as_ref().ok().and_then(|q| q.token.as_deref());
        let given = bearer.or(from_query);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
            let mut e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this studio needs its token: Authorization: Bearer TOKEN, or ?token=TOKEN",
            );
            e.field = Some("token".into());
            return e.into_response();
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn busy(b: crate::pool::Busy) -> ApiError {
    let secs = b.retry_after.as_secs_f64().ceil() as u64;
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("the studio is busy: try again in {secs} s"),
        )
    }
}

fn timed_out(what: &str, deadline: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!(
            "{what} took longer than the studio's deadline of {:.0} s",
            deadline.as_secs_f64()
        ),
    )
}

async fn generate(
    State(studio): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let request: GenerateRequest = parse_json(&body.map_err(body_error)?)?;
    let Some(generator) = studio.generator.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            studio.no_generator.clone(),
        ));
    };
    let options = request.validate(generator.vocab_len())?;
    let deadline = Instant::now() + studio.deadline;
    let text = request.text.clone();
    let job = {
        let options = options.clone();
        move |ticket: &crate::pool::Ticket| {
            let started = Instant::now();
            let g = generator.generate_unless(&text, &options, &|| ticket.should_stop())?;
            let piece = piece::describe(&g, &options, started.elapsed())?;
            Ok::<_, anyhow::Error>((g.midi, piece))
        }
    };
    let answer = studio.pool.submit(deadline, job).map_err(busy)?;
    let (midi, mut piece) = match answer.await {
        Outcome::Done(Ok(done)) => done,
        Outcome::Done(Err(e)) if e.is::<Stopped>() => {
            return Err(timed_out("generating", studio.deadline));
        }
        Outcome::Done(Err(e)) => return Err(ApiError::internal(&e)),
        Outcome::TimedOut => return Err(timed_out("generating", studio.deadline)),
    };
    let id = ResultId::random();
    piece["id"] = json!(id);
    piece["midi"] = json!(format!("/api/results/{id}/midi"));
    piece["audio"] = json!(format!("/api/results/{id}/audio"));
    studio.results.insert(id, piece.clone(), midi);
    Ok(axum::Json(piece))
}

/// A body that could not be read (too large, cut off) as a JSON error.
fn body_error(e: BytesRejection) -> ApiError {
    ApiError {
        field: Some("body".into()),
        ..ApiError::new(e.status(), e.body_text())
    }
}

fn result_id(id: &str) -> Result<ResultId, ApiError> {
    ResultId::parse(id).ok_or_else(|| ApiError::no_result(id))
}

async fn list_results(State(studio): Shared) -> axum::Json<Value> {
    let pieces: Vec<Value> = studio
        .results
        .list()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    axum::Json(json!({ "results": pieces, "bytes": studio.results.bytes() }))
}

async fn get_result(
    State(studio): Shared,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let kept = studio
        .results
        .get(result_id(&id)?)
        .ok_or_else(|| ApiError::no_result(&id))?;
    Ok(axum::Json((*kept.piece).clone()))
}

async fn get_midi(State(studio): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let rid = result_id(&id)?;
    let midi = studio
        .results
        .get(rid)
        .ok_or_else(|| ApiError::no_result(&id))?
        .midi;
    let disposition = format!("attachment; filename=\"amt-{rid}.mid\"");
    Ok((
        [
            (header::CONTENT_TYPE, "audio/midi".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        midi.to_vec(),
    )
        .into_response())
}

fn wav_response(wav: &[u8]) -> Response {
    ([(header::CONTENT_TYPE, "audio/wav")], wav.to_vec()).into_response()
}

/// Renders MIDI bytes on the pool.
async fn render_on_pool(studio: &Arc<Studio>, midi: Arc<[u8]>) -> Result<Arc<[u8]>, ApiError> {
    let Some(synth) = studio.synth.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            studio.no_synth.clone(),
        ));
    };
    let deadline = Instant::now() + studio.deadline;
    let answer = studio
        .pool
        .submit(deadline, move |_| {
            synth.render(&midi).and_then(|a| a.wav_bytes())
        })
        .map_err(busy)?;
    match answer.await {
        Outcome::Done(Ok(wav)) => Ok(wav.into()),
        Outcome::Done(Err(e @ amt_stages::audio::AudioError::TooLong { .. })) => Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        ),
        Outcome::Done(Err(e @ amt_stages::audio::AudioError::Midi(_))) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Outcome::Done(Err(e)) => Err(ApiError::internal(&e.into())),
        Outcome::TimedOut => Err(timed_out("rendering", studio.deadline)),
    }
}

async fn get_audio(State(studio): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let rid = result_id(&id)?;
    let kept = studio
        .results
        .get(rid)
        .ok_or_else(|| ApiError::no_result(&id))?;
    if let Some(wav) = kept.wav {
        return Ok(wav_response(&wav));
    }
    let wav = render_on_pool(&studio, kept.midi).await?;
    studio.results.set_wav(rid, Arc::clone(&wav));
    Ok(wav_response(&wav))
}

/// `POST /api/render` with a MIDI file as the body: its audio as WAV.
async fn render(
    State(studio): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    // Our own reader first: it is fuzzed, and names what is wrong.
    amt_stages::midi::parse(&body).map_err(|e| ApiError {
        field: Some("body".into()),
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body is not a MIDI file amt can read: {e}"),
        )
    })?;
    let wav = render_on_pool(&studio, body.to_vec().into()).await?;
    Ok(wav_response(&wav))
}

/// Runs a blocking pipeline query off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(&e)),
        Err(e) => Err(ApiError::internal(&anyhow::anyhow!(
            "the query panicked: {e}"
        ))),
    }
}

async fn status(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    let pipeline = studio.pipeline.clone();
    let mut status = blocking(move || pipeline.status()).await?;
    status["model"] = json!(studio.generator.is_some());
    status["workers"] = json!(studio.pool.workers());
    status["pending"] = json!(studio.pool.pending());
    Ok(axum::Json(status))
}

async fn runs(
    State(studio): Shared,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut last = None;
    for (key, value) in &query {
        match key.as_str() {
            "last" => {
                let n = value.parse::<usize>().map_err(|_| {
                    ApiError::field(
                        "last",
                        format!("last must be a whole number, not {value:?}"),
                    )
                })?;
                last = Some(n);
            }
            // Checked before this.
            "token" => {}
            other => {
                return Err(ApiError::field(
                    other,
                    format!("unknown parameter {other:?}; the one known is `last`"),
                ));
            }
        }
    }
    let last = last.unwrap_or(20);
    if !(1..=1000).contains(&last) {
        return Err(ApiError::field(
            "last",
            format!("last must be in [1, 1000], not {last}"),
        ));
    }
    let pipeline = studio.pipeline.clone();
    Ok(axum::Json(blocking(move || pipeline.runs(last)).await?))
}

async fn metrics(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    let pipeline = studio.pipeline.clone();
    Ok(axum::Json(
        blocking(move || pipeline.status().and_then(|s| pipeline.metrics(&s))).await?,
    ))
}

async fn loss(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    let pipeline = studio.pipeline.clone();
    let rows = blocking(move || pipeline.status().and_then(|s| pipeline.loss(&s))).await?;
    Ok(axum::Json(json!({ "rows": rows })))
}

async fn report(State(studio): Shared) -> Result<axum::Json<Value>, ApiError> {
    let pipeline = studio.pipeline.clone();
    let html = blocking(move || pipeline.status().and_then(|s| pipeline.report_html(&s))).await?;
    Ok(axum::Json(json!({ "html": html })))
}

async fn report_file(
    State(studio): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let pipeline = studio.pipeline.clone();
    let wanted = name.clone();
    let path =
        blocking(move || pipeline.status().map(|s| pipeline.report_file(&s, &wanted))).await?;
    let Some(path) = path else {
        return Err(ApiError {
            field: Some("name".into()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the report has no file {name:?}"),
            )
        });
    };
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::internal(&anyhow::Error::new(e).context(path.display().to_string()))
    })?;
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
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
