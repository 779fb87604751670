//! k-means (linfa) with a seed, and `k` chosen by silhouette when not fixed.
//! The original searched k = 2..10 and took the first best; so do we.

use anyhow::{Context, bail};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ClusterParams;

/// One `k` tried during the search.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KSearch {
    pub k: usize,
    pub silhouette: f64,
    pub inertia: f64,
}

/// The result of clustering.
#[derive(Clone, Debug)]
pub struct Clustering {
    pub k: usize,
    /// The token of each input vector.
    pub labels: Vec<u32>,
    /// Euclidean distance of each vector to its centroid.
    pub distances: Vec<f64>,
    pub centroids: Vec<Vec<f32>>,
    /// Sum of squared distances to the centroids.
    pub inertia: f64,
    /// Mean silhouette (on a seeded sample), when `1 < k < n`.
    pub silhouette: Option<f64>,
    pub search: Vec<KSearch>,
}

impl Clustering {
    /// Members per cluster.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0; self.k];
        for &l in &self.labels {
            sizes[l as usize] += 1;
        }
        sizes
    }
}

fn distance2(a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).powi(2)).sum()
}

fn fit(
    data: &Array2<f64>,
    k: usize,
    params: &ClusterParams,
) -> anyhow::Result<(Vec<u32>, Array2<f64>, f64)> {
    let dataset = DatasetBase::from(data.clone());
    let rng = <rand_xoshiro::Xoshiro256Plus as rand_xoshiro::rand_core::SeedableRng>::seed_from_u64(
        params.seed,
    );
    let model = KMeans::params_with_rng(k, rng)
        .max_n_iterations(params.max_iter)
        .n_runs(params.n_init.max(1))
        .tolerance(1e-4)
        .fit(&dataset)
        .with_context(|| format!("k-means with k = {k}"))?;
    let labels: Vec<u32> = model.predict(data).iter().map(|&l| l as u32).collect();
    let centroids = model.centroids().clone();
    let inertia = data
        .rows()
        .into_iter()
        .zip(&labels)
        .map(|(row, &l)| distance2(row, centroids.row(l as usize)))
        .sum();
    Ok((labels, centroids, inertia))
}

/// Mean silhouette over a seeded sample of at most `sample` points (as
/// scikit-learn's `silhouette_score(sample_size=…)`); a singleton scores 0.
pub fn silhouette(data: &Array2<f64>, labels: &[u32], k: usize, sample: usize, seed: u64) -> f64 {
    let n = data.nrows();
    let mut idx: Vec<usize> = (0..n).collect();
    if sample < n {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        idx.truncate(sample);
        idx.sort_unstable();
    }
    let mut total = 0.0;
    for &i in &idx {
        let mut sum = vec![0.0; k];
        let mut count = vec![0usize; k];
        for &j in &idx {
            if i != j {
                sum[labels[j] as usize] += distance2(data.row(i), data.row(j)).sqrt();
                count[labels[j] as usize] += 1;
            }
        }
        let own = labels[i] as usize;
        if count[own] == 0 {
            continue; // a singleton contributes 0
        }
        let a = sum[own] / count[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && count[c] > 0)
            .map(|c| sum[c] / count[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
        }
    }
    total / idx.len() as f64
}

/// Clusters the vectors: with `params.k`, or by silhouette over `k_min..=k_max`.
pub fn cluster(vectors: &[Vec<f32>], params: &ClusterParams) -> anyhow::Result<Clustering> {
    let n = vectors.len();
    if n < 2 {
        bail!("clustering needs at least 2 embeddings, got {n}");
    }
    let dim = vectors[0].len();
    let data = Array2::from_shape_fn((n, dim), |(i, j)| f64::from(vectors[i][j]));
    let candidates: Vec<usize> = match params.k {
        Some(k) if k == 0 || k > n => {
            bail!("cluster.k = {k} must be between 1 and the number of embeddings ({n})")
        }
        Some(k) => vec![k],
        None if params.k_min < 2 || params.k_min > params.k_max => {
            bail!(
                "cluster.k_min ({}) must be at least 2 and at most k_max ({})",
                params.k_min,
                params.k_max
            )
        }
        None => (params.k_min..=params.k_max.min(n - 1)).collect(),
    };
    let mut best: Option<(usize, Vec<u32>, Array2<f64>, f64, Option<f64>)> = None;
    let mut search = Vec::new();
    for &k in &candidates {
        let (labels, centroids, inertia) = fit(&data, k, params)?;
        let sil = (k > 1 && k < n)
            .then(|| silhouette(&data, &labels, k, params.silhouette_sample, params.seed));
        if candidates.len() > 1 {
            search.push(KSearch {
                k,
                silhouette: sil.unwrap_or(f64::NAN),
                inertia,
            });
        }
        // Strictly better only: the first best k wins ties, as in the original.
        let better = match (&best, sil) {
            (None, _) => true,
            (Some((_, _, _, _, Some(b))), Some(s)) => s > *b,
            _ => false,
        };
        if better {
            best = Some((k, labels, centroids, inertia, sil));
        }
    }
    let (k, labels, centroids, inertia, silhouette) = best.expect("at least one k was tried");
    let distances = data
        .rows()
        .into_iter()
        .zip(&labels)
        .map(|(row, &l)| distance2(row, centroids.row(l as usize)).sqrt())
        .collect();
    let centroids = centroids
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    Ok(Clustering {
        k,
        labels,
        distances,
        centroids,
        inertia,
        silhouette,
        search,
    })
}
