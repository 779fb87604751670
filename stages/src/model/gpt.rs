//! GPT-2 in tch: token and learned position embeddings, pre-LayerNorm blocks
//! of causal self-attention (libtorch's scaled_dot_product_attention) and a
//! GELU MLP, and an LM head tied to the token embeddings.
//!
//! Parameters carry Hugging Face's `GPT2LMHeadModel` names and its Conv1D
//! layout (`[in, out]`), so the checkpoint exports to transformers by renaming
//! nothing.

use tch::nn::{self, Init, Module};
use tch::{Device, Kind, Tensor};

use super::config::{Conditioning, GptConfig};

/// A dense layer stored as Hugging Face's Conv1D: `y = x·W + b`, `W` is `[in, out]`.
#[derive(Debug)]
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn new(p: nn::Path, inputs: usize, outputs: usize, std: f64) -> Self {
        let weight = p.var(
            "weight",
            &[inputs as i64, outputs as i64],
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        let bias = p.var("bias", &[outputs as i64], Init::Const(0.0));
        Self { weight, bias }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.weight) + &self.bias
    }
}

/// Causal self-attention: queries, keys and values from one projection,
/// libtorch's scaled dot-product attention, and an output projection.
#[derive(Debug)]
struct Attention {
    c_attn: Dense,
    c_proj: Dense,
    heads: i64,
    head_dim: i64,
}

impl Attention {
    /// `x` is `[B, T, width]`; with a layer's cache, its positions from `start` on.
    fn forward(
        &self,
        x: &Tensor,
        cache: Option<(&mut Tensor, &mut Tensor)>,
        start: i64,
        dropout: f64,
        train: bool,
    ) -> Tensor {
        let (batch, len, width) = x.size3().expect("x is [batch, time, width]");
        let qkv = self.c_attn.forward(x).split(width, 2);
        let split = |t: &Tensor| t.view([batch, len, self.heads, self.head_dim]).transpose(1, 2);
        let (q, k, v) = (split(&qkv[0]), split(&qkv[1]), split(&qkv[2]));
        let (k, v) = match cache {
            Some((keys, values)) => {
                keys.narrow(2, start, len).copy_(&k);
                values.narrow(2, start, len).copy_(&v);
                (keys.narrow(2, 0, start + len), values.narrow(2, 0, start + len))
            }
            None => (k, v),
        };
        // One new query attends to every cached key; a fresh sequence is causal.
        let causal = len > 1;
        let attention_dropout = if train { dropout } else { 0.0 };
        let y = Tensor::scaled_dot_product_attention::<Tensor>(
            &q,
            &k,
            &v,
            None,
            attention_dropout,
            causal,
            None,
            false,
        );
        let y = y.transpose(1, 2).contiguous().view([batch, len, width]);
        self.c_proj.forward(&y).dropout(dropout, train)
    }
}

/// The feed-forward half of a block: widen four times, GELU, narrow.
#[derive(Debug)]
struct Mlp {
    c_fc: Dense,
    c_proj: Dense,
}

impl Mlp {
    fn forward(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        let h = self.c_fc.forward(x).gelu("tanh");
        self.c_proj.forward(&h).dropout(dropout, train)
    }
}

/// A pre-LayerNorm transformer block: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Debug)]
struct Block {
    ln_1: nn::LayerNorm,
    attn: Attention,
    ln_2: nn::LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(p: &nn::Path, c: &GptConfig, std: f64, proj_std: f64) -> Self {
        let d = c.width;
        let ln = |p: nn::Path| nn::layer_norm(p, vec![d as i64], Default::default());
        Block {
            ln_1: ln(p / "ln_1"),
            attn: Attention {
                c_attn: Dense::new(p / "attn" / "c_attn", d, 3 * d, std),
                c_proj: Dense::new(p / "attn" / "c_proj", d, d, proj_std),
                heads: c.heads as i64,
                head_dim: c.head_dim() as i64,
            },
            ln_2: ln(p / "ln_2"),
            mlp: Mlp {
                c_fc: Dense::new(p / "mlp" / "c_fc", d, 4 * d, std),
                c_proj: Dense::new(p / "mlp" / "c_proj", 4 * d, d, proj_std),
            },
        }
    }

    fn forward(
        &self,
        x: Tensor,
        cache: Option<(&mut Tensor, &mut Tensor)>,
        start: i64,
        dropout: f64,
        train: bool,
    ) -> Tensor {
        let x = &x + self.attn.forward(&self.ln_1.forward(&x), cache, start, dropout, train);
        &x + self.mlp.forward(&self.ln_2.forward(&x), dropout, train)
    }
}

/// Keys and values of every layer for the positions seen so far, preallocated
/// to the context so each step writes in place instead of concatenating.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: i64,
}

impl KvCache {
    /// How many positions are cached.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True before the first forward pass.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The model.
#[derive(Debug)]
pub struct Gpt {
    pub config: GptConfig,
    pub vs: nn::VarStore,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
    /// Projects the sentence embedding onto the first position.
    cond_proj: Option<Dense>,
}

impl Gpt {
    /// A freshly initialised model (GPT-2's init: N(0, 0.02), residual
    /// projections scaled by 1/√(2·layers)); seed torch first for determinism.
    pub fn new(config: GptConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let t = &root / "transformer";
        let (d, std) = (config.width, 0.02);
        let proj_std = std / (2.0 * config.layers as f64).sqrt();
        let wte = (&t / "wte").var(
            "weight",
            &[config.vocab_size as i64, d as i64],
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        let wpe = (&t / "wpe").var(
            "weight",
            &[config.context as i64, d as i64],
            Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        );
        let blocks = (0..config.layers)
            .map(|i| Block::new(&(&t / "h" / i), &config, std, proj_std))
            .collect();
        let ln_f = nn::layer_norm(&t / "ln_f", vec![d as i64], Default::default());
        let cond_proj = (config.conditioning == Conditioning::TokensAndEmbedding)
            .then(|| Dense::new(&root / "cond_proj", config.embedding_dim, d, std));
        Self {
            config,
            vs,
            wte,
            wpe,
            blocks,
            ln_f,
            cond_proj,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The number of parameters (the tied head counted once).
    pub fn parameters(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(Tensor::numel)
            .map(|n| n as i64)
            .sum()
    }

    /// An empty cache for `batch` sequences.
    pub fn cache(&self, batch: usize) -> KvCache {
        let c = &self.config;
        let shape = [
            batch as i64,
            c.heads as i64,
            c.context as i64,
            c.head_dim() as i64,
        ];
        let kind = self.wte.kind();
        let zeros = || Tensor::zeros(shape, (kind, self.device()));
        KvCache {
            keys: (0..c.layers).map(|_| zeros()).collect(),
            values: (0..c.layers).map(|_| zeros()).collect(),
            len: 0,
        }
    }

    /// Logits `[B, T, vocab]` for token ids `[B, T]`.
    ///
    /// With a cache, the ids continue the cached positions: the first call
    /// may pass a whole prompt, later calls one token each. `embedding`
    /// (`[B, embedding_dim]`) is used only by `tokens+embedding` models, at position 0.
    pub fn forward(
        &self,
        ids: &Tensor,
        embedding: Option<&Tensor>,
        train: bool,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor {
        let (_, len) = ids.size2().expect("ids are [batch, time]");
        let start = cache.as_ref().map_or(0, |c| c.len);
        assert!(
            start + len <= self.config.context as i64,
            "sequence longer than the model's context"
        );
        assert!(
            start == 0 || len == 1,
            "a cached forward pass continues one token at a time"
        );
        let positions = Tensor::arange_start(start, start + len, (Kind::Int64, ids.device()));
        let mut x = Tensor::embedding(&self.wte, ids, -1, false, false)
            + Tensor::embedding(&self.wpe, &positions, -1, false, false);
        if let (Some(proj), Some(e), 0) = (&self.cond_proj, embedding, start) {
            let first = x.narrow(1, 0, 1) + proj.forward(&e.to_kind(x.kind())).unsqueeze(1);
            x = Tensor::cat(&[first, x.narrow(1, 1, len - 1)], 1);
        }
        let dropout = self.config.dropout;
        let mut x = x.dropout(dropout, train);
        for (layer, block) in self.blocks.iter().enumerate() {
            let kv = cache
                .as_deref_mut()
                .map(|c| (&mut c.keys[layer], &mut c.values[layer]));
            x = block.forward(x, kv, start, dropout, train);
        }
        if let Some(c) = cache {
            c.len = start + len;
        }
        self.ln_f.forward(&x).linear::<Tensor>(&self.wte, None)
    }
}
