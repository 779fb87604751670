//! The cluster stage: k-means over the sentence embeddings gives every piece a
//! semantic token. The centroids are saved with the model name and dimension,
//! so generation can map a new sentence to its nearest token.

pub mod centroids;
pub mod kmeans;
pub mod tokens;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::embed::vectors::{EmbedInfo, read_embeddings};
pub use centroids::Centroids;
pub use kmeans::{Clustering, KSearch, cluster};

/// `[params] cluster.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterParams {
    /// A fixed number of clusters; when absent, `k` is chosen by silhouette over `k_min..=k_max`.
    #[serde(default)]
    pub k: Option<usize>,
    #[serde(default = "two")]
    pub k_min: usize,
    #[serde(default = "ten")]
    pub k_max: usize,
    /// Seed for initialisation and silhouette sampling.
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "iters")]
    pub max_iter: u64,
    /// Restarts; the run with the lowest inertia wins.
    #[serde(default = "ten")]
    pub n_init: usize,
    /// Points used to estimate the silhouette (all of them if fewer).
    #[serde(default = "sample")]
    pub silhouette_sample: usize,
}

fn two() -> usize {
    2
}
fn ten() -> usize {
    10
}
fn iters() -> u64 {
    300
}
fn sample() -> usize {
    2000
}

impl Default for ClusterParams {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("all fields have defaults")
    }
}

/// `report.json`: how the clustering came out.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub k: usize,
    pub silhouette: Option<f64>,
    pub inertia: f64,
    pub sizes: Vec<usize>,
    /// The silhouette of every `k` tried, when `k` was searched.
    pub search: Vec<KSearch>,
}

/// The stage: `deps = { embeddings = ".../embeddings.parquet", info = ".../embed.json" }`, `outs = { dir = "…" }`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: ClusterParams = ctx.params("cluster")?;
    let info_path = ctx.dep("info")?;
    let info: EmbedInfo = serde_json::from_slice(
        &std::fs::read(&info_path).with_context(|| format!("reading {}", info_path.display()))?,
    )
    .with_context(|| format!("parsing {}", info_path.display()))?;
    let (paths, vectors): (Vec<String>, Vec<Vec<f32>>) =
        read_embeddings(&ctx.dep("embeddings")?)?.into_iter().unzip();
    let started = std::time::Instant::now();
    let result = cluster(&vectors, &params)?;

    let out = ctx.out("dir")?;
    tokens::write(
        &out.join(tokens::FILE),
        &paths,
        &result.labels,
        &result.distances,
    )?;
    let centroids = Centroids {
        model: info.model,
        dim: info.dim,
        pooling: info.pooling,
        normalize: info.normalize,
        seed: params.seed,
        centroids: result.centroids.clone(),
    };
    std::fs::write(out.join(centroids::FILE), serde_json::to_vec(&centroids)?)?;
    let report = Report {
        k: result.k,
        silhouette: result.silhouette,
        inertia: result.inertia,
        sizes: result.sizes(),
        search: result.search,
    };
    let mut json = serde_json::to_vec_pretty(&report)?;
    json.push(b'\n');
    std::fs::write(out.join("report.json"), json)?;
    println!(
        "cluster: {} embeddings into k = {} (silhouette {}), sizes {:?}, in {:.2}s",
        paths.len(),
        report.k,
        report
            .silhouette
            .map_or("n/a".into(), |s| format!("{s:.4}")),
        report.sizes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
