//! The grammar sampling keeps to: which token types may come at each step.

use crate::tokenizer::Tokenizer;

/// Which tokens may come next. A piece opens with `Bar TimeSig Tempo`;
/// constraining the first three steps to those token types (the model still
/// picks the values) makes every piece state its meter and tempo.
pub(super) struct Grammar {
    header: [Vec<bool>; 3],
    /// Every music token, and EOS.
    pub(super) music: Vec<bool>,
}

impl Grammar {
    pub(super) fn new(tok: &Tokenizer) -> Self {
        let mask = |keep: &dyn Fn(&str) -> bool| -> Vec<bool> {
            (0..tok.vocab.len() as u16)
                .map(|id| tok.vocab.token(id).is_some_and(|t| keep(t.kind())))
                .collect()
        };
        Self {
            header: [
                mask(&|k| k == "Bar"),
                mask(&|k| k == "TimeSig"),
                mask(&|k| k == "Tempo"),
            ],
            music: mask(&|k| !matches!(k, "special" | "conditioning")),
        }
    }

    /// The tokens allowed as the `step`-th music token.
    pub(super) fn at(&self, step: usize) -> &[bool] {
        self.header.get(step).unwrap_or(&self.music)
    }
}
