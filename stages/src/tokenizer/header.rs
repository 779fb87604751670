//! The state a stretch of music plays in: the last `TimeSig`, `Tempo` and
//! `Program` before it. A piece states them in its first bar and then only
//! where they change, so a window cut from the middle of a piece would show
//! the model music with no meter or tempo beside the prefix that asked for
//! them. Every window after a piece's first restates them right after the
//! prefix, and generation does the same when its window slides.

use super::vocab::{Token, Vocab};

/// The meter, tempo and program in force, as token ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    time_signature: Option<u16>,
    tempo: Option<u16>,
    program: Option<u16>,
}

impl Header {
    /// The state after a run of music tokens.
    pub fn after(vocab: &Vocab, music: &[u16]) -> Self {
        let mut h = Self::default();
        for &id in music {
            h.observe(vocab, id);
        }
        h
    }

    /// Takes in one more music token.
    pub fn observe(&mut self, vocab: &Vocab, id: u16) {
        match vocab.token(id) {
            Some(Token::TimeSig(..)) => self.time_signature = Some(id),
            Some(Token::Tempo(_)) => self.tempo = Some(id),
            Some(Token::Program(_)) => self.program = Some(id),
            _ => {}
        }
    }

    /// `TimeSig Tempo Program`, each once it has been stated.
    pub fn tokens(&self) -> Vec<u16> {
        [self.time_signature, self.tempo, self.program]
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Config;

    #[test]
    fn keeps_the_latest_of_each() {
        let v = Vocab::new(Config::default());
        let ids: Vec<u16> = [
            Token::Bar,
            Token::TimeSig(3, 4),
            Token::Tempo(10),
            Token::Position(0),
            Token::Program(Some(40)),
            Token::Pitch(60),
            Token::Bar,
            Token::Tempo(12),
            Token::Program(None),
            Token::Pitch(36),
        ]
        .into_iter()
        .map(|t| v.id(t))
        .collect();
        let want: Vec<u16> = [Token::TimeSig(3, 4), Token::Tempo(12), Token::Program(None)]
            .into_iter()
            .map(|t| v.id(t))
            .collect();
        assert_eq!(Header::after(&v, &ids).tokens(), want);
        assert_eq!(
            Header::after(&v, &ids[..4]).tokens(),
            [v.id(Token::TimeSig(3, 4)), v.id(Token::Tempo(10))]
        );
        assert!(Header::after(&v, &[]).tokens().is_empty());
    }
}
