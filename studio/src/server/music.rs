//! The music handlers: generate a piece, list and fetch results, render
//! audio on the worker pool.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use amt_stages::audio::AudioError;
use amt_stages::generate::Stopped;

use crate::api::{ApiError, GenerateRequest, parse_json};
use crate::piece;
use crate::pool::Outcome;
use crate::results::ResultId;

use super::range::ranged;
use super::{
    MAX_LISTED, Shared, Studio, body, content_type, last_param, panicked, refused, timed_out,
};

pub(super) async fn generate(
    State(studio): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    content_type(&headers, &["application/json"])?;
    let request: GenerateRequest = parse_json(&body(raw)?)?;
    let generator = match &studio.generator {
        Ok(g) => Arc::clone(g),
        Err(why) => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.to_string())),
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

pub(super) async fn list_results(
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

pub(super) async fn get_result(
    State(studio): Shared,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    Ok(json_bytes(kept(&studio, result_id(id)?)?.piece))
}

pub(super) async fn get_midi(
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
        Err(why) => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why.to_string())),
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

pub(super) async fn get_audio(
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
pub(super) async fn render(
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
