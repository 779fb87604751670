//! k-means semantic tokens: seeded determinism, the nearest-centroid mapping,
//! large k, and a snapshot of cluster sizes on fixed embeddings.

use std::path::PathBuf;

use amt_stages::cluster::{Centroids, ClusterParams, cluster};
use amt_stages::embed::Pooling;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    vectors: Vec<Vec<f32>>,
}

/// Fixed embeddings: sentence-transformers' vectors of the 128 fixture texts.
fn fixture() -> Vec<Vec<f32>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json");
    serde_json::from_slice::<Reference>(&std::fs::read(path).unwrap())
        .unwrap()
        .vectors
}

#[test]
fn the_same_seed_gives_the_same_clustering() {
    let v = fixture();
    let p = ClusterParams {
        k: Some(6),
        seed: 11,
        ..ClusterParams::default()
    };
    let a = cluster(&v, &p).unwrap();
    let b = cluster(&v, &p).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.centroids, b.centroids);
    assert_eq!(a.inertia.to_bits(), b.inertia.to_bits());
}

#[test]
fn nearest_centroid_maps_every_vector_back_to_its_token() {
    let v = fixture();
    let c = cluster(
        &v,
        &ClusterParams {
            k: Some(8),
            seed: 1,
            ..ClusterParams::default()
        },
    )
    .unwrap();
    let saved = Centroids {
        model: "m".into(),
        dim: 384,
        pooling: Pooling::Mean,
        normalize: true,
        seed: 1,
        centroids: c.centroids.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("centroids.json");
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    let loaded = Centroids::load(&file).unwrap();
    assert_eq!(loaded, saved, "f32 centroids survive JSON exactly");
    for (i, vector) in v.iter().enumerate() {
        let (token, distance) = loaded.nearest(vector);
        assert_eq!(token, c.labels[i], "vector {i}");
        assert!((distance - c.distances[i]).abs() < 1e-4);
    }
}

#[test]
fn large_k_works() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let v: Vec<Vec<f32>> = (0..640)
        .map(|i| {
            (0..8)
                .map(|d| ((i % 160) * 7 + d) as f32 % 13.0 + rng.random::<f32>())
                .collect()
        })
        .collect();
    let c = cluster(
        &v,
        &ClusterParams {
            k: Some(128),
            n_init: 1,
            max_iter: 20,
            ..ClusterParams::default()
        },
    )
    .unwrap();
    assert_eq!(c.k, 128);
    assert_eq!(c.sizes().iter().sum::<usize>(), 640);
    assert!(c.sizes().iter().filter(|&&s| s > 0).count() > 100);
}

#[test]
fn k_chosen_by_silhouette_snapshot() {
    let c = cluster(
        &fixture(),
        &ClusterParams {
            k_min: 2,
            k_max: 8,
            seed: 0,
            n_init: 3,
            ..ClusterParams::default()
        },
    )
    .unwrap();
    let mut text = format!(
        "chosen k = {}, silhouette {:.4}\nsizes {:?}\n",
        c.k,
        c.silhouette.unwrap(),
        c.sizes()
    );
    for s in &c.search {
        text.push_str(&format!("k = {}: silhouette {:.4}\n", s.k, s.silhouette));
    }
    insta::assert_snapshot!("cluster_sizes", text);
    let best = c
        .search
        .iter()
        .map(|s| s.silhouette)
        .fold(f64::MIN, f64::max);
    assert_eq!(c.silhouette, Some(best), "the best silhouette wins");
}

/// linfa-clustering's k-means (what cluster used before its own) on the same
/// vectors, the same `k`, restarts and iteration limit: its inertia.
fn linfa_inertia(vectors: &[Vec<f32>], k: usize, n_init: usize, seed: u64) -> f64 {
    use linfa::prelude::*;
    let data = ndarray::Array2::from_shape_fn((vectors.len(), vectors[0].len()), |(i, j)| {
        f64::from(vectors[i][j])
    });
    let rng = <rand_xoshiro::Xoshiro256Plus as rand_xoshiro::rand_core::SeedableRng>::seed_from_u64(seed);
    let model = linfa_clustering::KMeans::params_with_rng(k, rng)
        .n_runs(n_init)
        .max_n_iterations(300)
        .tolerance(1e-4)
        .fit(&DatasetBase::from(data.clone()))
        .unwrap();
    let labels = model.predict(&data);
    data.rows()
        .into_iter()
        .zip(labels.iter())
        .map(|(row, &l)| {
            row.iter()
                .zip(model.centroids().row(l))
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
        })
        .sum()
}

#[test]
fn inertia_is_no_worse_than_linfas() {
    let v = fixture();
    for k in [4, 8, 16] {
        let ours = cluster(
            &v,
            &ClusterParams {
                k: Some(k),
                seed: 0,
                n_init: 10,
                ..ClusterParams::default()
            },
        )
        .unwrap()
        .inertia;
        let theirs = linfa_inertia(&v, k, 10, 0);
        // Both are local optima from random seeds; ours may not lose by more
        // than rounding.
        assert!(
            ours <= theirs * (1.0 + 1e-6),
            "k = {k}: inertia {ours} against linfa's {theirs}"
        );
    }
}
