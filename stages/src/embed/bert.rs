//! A BERT encoder in tch that loads a Hugging Face BERT directory
//! (`config.json`, `model.safetensors`): embeddings, post-LayerNorm encoder
//! layers with scaled-dot-product attention, and exact (erf) GELU.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The fields of `config.json` the encoder needs; the rest are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub max_position_embeddings: i64,
    #[serde(default = "two")]
    pub type_vocab_size: i64,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn two() -> i64 {
    2
}
fn eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attention_out: nn::Linear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
}

/// The encoder and the variables it owns.
pub struct Bert {
    pub config: BertConfig,
    vs: nn::VarStore,
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    embedding_norm: nn::LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Loads `dir/config.json` and `dir/model.safetensors` onto `device`.
    /// Tensor names may carry a `bert.` prefix (as in bert-base-uncased) or not
    /// (as in sentence-transformers models).
    pub fn load(dir: &Path, device: Device) -> anyhow::Result<Self> {
        let config_path = dir.join("config.json");
        let config: BertConfig = serde_json::from_slice(
            &std::fs::read(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?,
        )
        .with_context(|| format!("parsing {}", config_path.display()))?;
        if config.hidden_act != "gelu" {
            bail!(
                "{}: hidden_act `{}` is not supported (only `gelu`)",
                config_path.display(),
                config.hidden_act
            );
        }
        if config.hidden_size % config.num_attention_heads != 0 {
            bail!(
                "{}: hidden_size is not a multiple of num_attention_heads",
                config_path.display()
            );
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let ln = |p: nn::Path| {
            nn::layer_norm(
                p,
                vec![config.hidden_size],
                nn::LayerNormConfig {
                    eps: config.layer_norm_eps,
                    ..Default::default()
                },
            )
        };
        let h = config.hidden_size;
        let e = root.clone() / "embeddings";
        let word = nn::embedding(
            &e / "word_embeddings",
            config.vocab_size,
            h,
            Default::default(),
        );
        let position = nn::embedding(
            &e / "position_embeddings",
            config.max_position_embeddings,
            h,
            Default::default(),
        );
        let token_type = nn::embedding(
            &e / "token_type_embeddings",
            config.type_vocab_size,
            h,
            Default::default(),
        );
        let embedding_norm = ln(&e / "LayerNorm");
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = root.clone() / "encoder" / "layer" / i;
                let a = &l / "attention";
                Layer {
                    query: nn::linear(&a / "self" / "query", h, h, Default::default()),
                    key: nn::linear(&a / "self" / "key", h, h, Default::default()),
                    value: nn::linear(&a / "self" / "value", h, h, Default::default()),
                    attention_out: nn::linear(&a / "output" / "dense", h, h, Default::default()),
                    attention_norm: ln(&a / "output" / "LayerNorm"),
                    intermediate: nn::linear(
                        &l / "intermediate" / "dense",
                        h,
                        config.intermediate_size,
                        Default::default(),
                    ),
                    output: nn::linear(
                        &l / "output" / "dense",
                        config.intermediate_size,
                        h,
                        Default::default(),
                    ),
                    output_norm: ln(&l / "output" / "LayerNorm"),
                }
            })
            .collect();
        let mut bert = Self {
            config,
            vs,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
        };
        bert.load_weights(&dir.join("model.safetensors"))?;
        Ok(bert)
    }

    fn load_weights(&mut self, file: &Path) -> anyhow::Result<()> {
        let tensors = Tensor::read_safetensors(file)
            .with_context(|| format!("reading {}", file.display()))?;
        let by_name: std::collections::HashMap<&str, &Tensor> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let prefix = if by_name.keys().any(|n| n.starts_with("bert.")) {
            "bert."
        } else {
            ""
        };
        let _guard = tch::no_grad_guard();
        for (name, mut var) in self.vs.variables() {
            let key = format!("{prefix}{name}");
            let src = by_name
                .get(key.as_str())
                .with_context(|| format!("{} has no tensor `{key}`", file.display()))?;
            if src.size() != var.size() {
                bail!(
                    "{}: `{key}` has shape {:?}, the config implies {:?}",
                    file.display(),
                    src.size(),
                    var.size()
                );
            }
            var.copy_(&src.to_kind(Kind::Float));
        }
        self.vs.freeze();
        Ok(())
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Hidden states `[batch, length, hidden]` for token ids and an attention
    /// mask (1 for tokens, 0 for padding), both `[batch, length]` int64.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let (batch, len) = ids.size2().expect("ids are [batch, length]");
        let positions = Tensor::arange(len, (Kind::Int64, ids.device())).unsqueeze(0);
        let types = ids.zeros_like();
        let mut x = self.word.forward(ids)
            + self.position.forward(&positions)
            + self.token_type.forward(&types);
        x = self.embedding_norm.forward(&x);
        let heads = self.config.num_attention_heads;
        let head_dim = self.config.hidden_size / heads;
        // [batch, 1, 1, length]: every query may attend to every real token.
        let attend = mask.to_kind(Kind::Bool).view([batch, 1, 1, len]);
        let split = |t: Tensor| t.view([batch, len, heads, head_dim]).transpose(1, 2);
        for layer in &self.layers {
            let q = split(layer.query.forward(&x));
            let k = split(layer.key.forward(&x));
            let v = split(layer.value.forward(&x));
            let context = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&attend),
                0.0,
                false,
                None,
                false,
            );
            let context =
                context
                    .transpose(1, 2)
                    .contiguous()
                    .view([batch, len, self.config.hidden_size]);
            x = layer
                .attention_norm
                .forward(&(layer.attention_out.forward(&context) + &x));
            let inner = layer.intermediate.forward(&x).gelu("none");
            x = layer
                .output_norm
                .forward(&(layer.output.forward(&inner) + &x));
        }
        x
    }
}
