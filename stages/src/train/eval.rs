//! Held-out loss and per-token-type perplexity (Pitch, Duration, Position, …),
//! used by training's validation and by evaluate's test-split perplexity.

use std::collections::{BTreeMap, HashMap};

use tch::Kind;

use super::data::{IGNORE, Windows};
use super::scores::{Evaluation, Perplexity};
use crate::model::Gpt;
use crate::tokenizer::Vocab;

/// Evaluates the model (no dropout, no gradients) on every window in batches of `batch`.
pub fn evaluate(
    model: &Gpt,
    windows: &Windows,
    vocab: &Vocab,
    prefix_len: usize,
    batch: usize,
    embeddings: Option<&(HashMap<String, Vec<f32>>, usize)>,
) -> Evaluation {
    let pad = i64::from(vocab.id(crate::tokenizer::Token::Pad));
    let mut sums: BTreeMap<&'static str, (u64, f64)> = BTreeMap::new();
    let rows: Vec<usize> = (0..windows.len()).collect();
    tch::no_grad(|| {
        for chunk in rows.chunks(batch.max(1)) {
            let (x, y) = windows.batch(chunk, prefix_len, pad, model.device(), None);
            let e = embeddings
                .map(|(table, dim)| windows.embeddings(chunk, table, *dim, model.device(), None));
            let logits = model
                .forward(&x, e.as_ref(), false, None)
                .to_kind(Kind::Float);
            let mask = y.ne(IGNORE);
            let nll = -logits
                .log_softmax(-1, Kind::Float)
                .gather(-1, &y.clamp_min(0).unsqueeze(-1), false)
                .squeeze_dim(-1);
            let nll = Vec::<f64>::try_from(
                nll.masked_select(&mask)
                    .to_kind(Kind::Double)
                    .to_device(tch::Device::Cpu),
            )
            .expect("a CPU f64 tensor converts");
            let targets = Vec::<i64>::try_from(y.masked_select(&mask).to_device(tch::Device::Cpu))
                .expect("a CPU i64 tensor converts");
            for (t, l) in targets.iter().zip(nll) {
                let kind = vocab.token(*t as u16).map_or("unknown", |t| t.kind());
                let e = sums.entry(kind).or_default();
                e.0 += 1;
                e.1 += l;
            }
        }
    });
    let ppl = |(n, sum): (u64, f64)| {
        let loss = if n == 0 { 0.0 } else { sum / n as f64 };
        Perplexity {
            tokens: n,
            loss,
            perplexity: loss.exp(),
        }
    };
    let total = sums.values().fold((0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    Evaluation {
        overall: ppl(total),
        by_type: sums
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ppl(v)))
            .collect(),
    }
}
