//! Loss and perplexity as recorded: the validation in `train.json` and the
//! test split's in evaluate's metrics. [`super::eval`] computes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Loss and perplexity over some tokens.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Perplexity {
    pub tokens: u64,
    /// Mean negative log-likelihood in nats.
    pub loss: f64,
    pub perplexity: f64,
}

/// A split's evaluation: overall, and per token type.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub overall: Perplexity,
    pub by_type: BTreeMap<String, Perplexity>,
}
