//! k-means with a seed, and `k` chosen by silhouette when not fixed.
//!
//! Greedy k-means++ seeding (several candidates per step, the best kept, as
//! scikit-learn does) and Hamerly's exact acceleration of Lloyd's iteration:
//! each point keeps an upper bound on the distance to its centre and a lower
//! bound on the distance to any other, and is only looked at again when the
//! centres have moved enough to break them. The result is Lloyd's, with most
//! distance computations skipped. linfa-clustering, which this replaced, is
//! kept as the cross-check in the tests and the benchmark.
//!
//! Everything that sums in parallel sums fixed chunks in a fixed order, so the
//! clustering is the same bytes on any number of threads.
//!
//! One file of about 500 lines of code (590 with comments and blank lines): the seeding,
//! Hamerly's bounds, the relocation of empty clusters, the silhouette and the
//! search over `k` all work on one private point layout (`Points`), and the
//! tests check them against each other.

use anyhow::bail;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ClusterParams;

/// Points per parallel work item: large enough to amortise the scheduling,
/// fixed so that sums do not depend on the thread count.
const CHUNK: usize = 512;

/// scikit-learn's default tolerance, relative to the data's mean variance.
const TOLERANCE: f64 = 1e-4;

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

/// `n` points of `dim` values, row after row.
struct Points {
    data: Vec<f32>,
    dim: usize,
}

impl Points {
    fn new(vectors: &[Vec<f32>]) -> anyhow::Result<Self> {
        let dim = vectors.first().map_or(0, Vec::len);
        if dim == 0 {
            bail!("the embeddings have no values");
        }
        if let Some((i, v)) = vectors.iter().enumerate().find(|(_, v)| v.len() != dim) {
            bail!(
                "embedding {i} has {} values where the first has {dim}",
                v.len()
            );
        }
        if let Some(i) = vectors
            .iter()
            .position(|v| v.iter().any(|x| !x.is_finite()))
        {
            bail!("embedding {i} holds a value that is not a finite number");
        }
        Ok(Self {
            data: vectors.concat(),
            dim,
        })
    }

    fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The mean over dimensions of each dimension's variance (scikit-learn
    /// scales its tolerance by this).
    fn mean_variance(&self) -> f64 {
        // Two passes (mean, then squared deviations): exact where the
        // one-pass E[x²] - E[x]² cancels on data far from the origin.
        let n = self.len() as f64;
        let mut mean = vec![0.0f64; self.dim];
        for row in self.data.chunks_exact(self.dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = 0.0f64;
        for row in self.data.chunks_exact(self.dim) {
            for (m, &x) in mean.iter().zip(row) {
                var += (f64::from(x) - m).powi(2);
            }
        }
        var / n / self.dim as f64
    }
}

/// Squared Euclidean distance, in eight lanes so that it vectorises.
fn distance2(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            lanes[l] += d * d;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Squared distance in double precision, for the reported inertia and distances.
fn distance2_exact(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum()
}

/// Centres, `k` rows of `dim` values.
type Centres = Vec<f32>;

/// Greedy k-means++ (Arthur and Vassilvitskii, with scikit-learn's
/// `2 + ln k` candidates per step): each new centre is the candidate, drawn
/// with probability proportional to the squared distance to the nearest
/// centre so far, that lowers the potential most.
fn seed_centres(points: &Points, k: usize, rng: &mut ChaCha8Rng) -> Centres {
    let n = points.len();
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = Vec::with_capacity(k * points.dim);
    let first = rng.random_range(0..n);
    centres.extend_from_slice(points.row(first));
    let mut closest: Vec<f32> = (0..n)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| distance2(points.row(i), points.row(first)))
        .collect();
    let mut potential = sum_f32(&closest);
    for _ in 1..k {
        let cumulative: Vec<f64> = closest
            .iter()
            .scan(0.0f64, |acc, &d| {
                *acc += f64::from(d);
                Some(*acc)
            })
            .collect();
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let target = rng.random::<f64>() * potential;
                cumulative.partition_point(|&c| c <= target).min(n - 1)
            })
            .collect();
        let (best, best_closest, best_potential) = candidates
            .iter()
            .map(|&c| {
                let next: Vec<f32> = (0..n)
                    .into_par_iter()
                    .with_min_len(CHUNK)
                    .map(|i| closest[i].min(distance2(points.row(i), points.row(c))))
                    .collect();
                let potential = sum_f32(&next);
                (c, next, potential)
            })
            // The first of equal candidates, as scikit-learn's argmin.
            .reduce(|a, b| if b.2 < a.2 { b } else { a })
            .expect("at least two candidates");
        centres.extend_from_slice(points.row(best));
        closest = best_closest;
        potential = best_potential;
    }
    centres
}

/// A sum in fixed chunks, whatever the thread count.
fn sum_f32(values: &[f32]) -> f64 {
    values
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&x| f64::from(x)).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

/// The nearest and second-nearest centre of `x`: (label, distance, second distance).
fn nearest_two(x: &[f32], centres: &[f32], dim: usize) -> (u32, f32, f32) {
    let (mut best, mut d1, mut d2) = (0u32, f32::INFINITY, f32::INFINITY);
    for (j, c) in centres.chunks_exact(dim).enumerate() {
        let d = distance2(x, c);
        if d < d1 {
            d2 = d1;
            d1 = d;
            best = j as u32;
        } else if d < d2 {
            d2 = d;
        }
    }
    (best, d1.sqrt(), d2.sqrt())
}

/// One point's state in Hamerly's algorithm.
#[derive(Clone, Copy)]
struct Bound {
    label: u32,
    /// At least the distance to the point's centre.
    upper: f32,
    /// At most the distance to any other centre.
    lower: f32,
}

/// One k-means run from a seed: (labels, centres).
fn lloyd(points: &Points, k: usize, max_iter: u64, tol: f64, seed: u64) -> (Vec<u32>, Centres) {
    let (n, dim) = (points.len(), points.dim);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = seed_centres(points, k, &mut rng);
    let mut bounds: Vec<Bound> = (0..n)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|i| {
            let (label, upper, lower) = nearest_two(points.row(i), &centres, dim);
            Bound {
                label,
                upper,
                lower,
            }
        })
        .collect();
    for _ in 0..max_iter {
        let next = means(points, &bounds, &centres, k);
        let shifts: Vec<f32> = centres
            .chunks_exact(dim)
            .zip(next.chunks_exact(dim))
            .map(|(a, b)| distance2(a, b).sqrt())
            .collect();
        let total_shift: f64 = shifts.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        centres = next;
        // Half the distance from each centre to its nearest other centre: a
        // point closer than that to its own centre cannot be closer to another.
        let half_gap: Vec<f32> = centres
            .chunks_exact(dim)
            .enumerate()
            .map(|(j, c)| {
                centres
                    .chunks_exact(dim)
                    .enumerate()
                    .filter(|&(i, _)| i != j)
                    .map(|(_, o)| distance2(c, o).sqrt())
                    .fold(f32::INFINITY, f32::min)
                    / 2.0
            })
            .collect();
        let (max1, arg1) =
            shifts.iter().enumerate().fold(
                (0.0f32, 0usize),
                |m, (j, &s)| if s > m.0 { (s, j) } else { m },
            );
        let max2 = shifts
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != arg1)
            .fold(0.0f32, |m, (_, &s)| m.max(s));
        let changed: usize = bounds
            .par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(chunk, bounds)| {
                let mut changed = 0;
                for (offset, b) in bounds.iter_mut().enumerate() {
                    let x = points.row(chunk * CHUNK + offset);
                    b.upper += shifts[b.label as usize];
                    b.lower -= if b.label as usize == arg1 { max2 } else { max1 };
                    let floor = half_gap[b.label as usize].max(b.lower);
                    if b.upper <= floor {
                        continue;
                    }
                    b.upper = distance2(x, &centres[b.label as usize * dim..][..dim]).sqrt();
                    if b.upper <= floor {
                        continue;
                    }
                    let (label, upper, lower) = nearest_two(x, &centres, dim);
                    changed += usize::from(label != b.label);
                    *b = Bound {
                        label,
                        upper,
                        lower,
                    };
                }
                changed
            })
            .sum();
        // Converged: no point moved, or the centres barely did (then the
        // labels above are already the final assignment to these centres).
        if changed == 0 || total_shift <= tol {
            break;
        }
    }
    (bounds.iter().map(|b| b.label).collect(), centres)
}

/// The mean of each cluster's points. An empty cluster takes the point
/// farthest from its own centre, which leaves its old cluster's mean, as
/// scikit-learn relocates them (the point's label follows at the next
/// assignment).
fn means(points: &Points, bounds: &[Bound], centres: &[f32], k: usize) -> Centres {
    let dim = points.dim;
    let partial: Vec<(Vec<f64>, Vec<usize>)> = bounds
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(chunk, bounds)| {
            let mut sum = vec![0.0f64; k * dim];
            let mut count = vec![0usize; k];
            for (offset, b) in bounds.iter().enumerate() {
                let l = b.label as usize;
                count[l] += 1;
                for (s, &x) in sum[l * dim..(l + 1) * dim]
                    .iter_mut()
                    .zip(points.row(chunk * CHUNK + offset))
                {
                    *s += f64::from(x);
                }
            }
            (sum, count)
        })
        .collect();
    let mut sum = vec![0.0f64; k * dim];
    let mut count = vec![0usize; k];
    for (s, c) in partial {
        sum.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        count.iter_mut().zip(c).for_each(|(a, b)| *a += b);
    }
    let empty: Vec<usize> = (0..k).filter(|&j| count[j] == 0).collect();
    if !empty.is_empty() {
        let mut far: Vec<(f32, usize)> = bounds
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let c = &centres[b.label as usize * dim..][..dim];
                (distance2(points.row(i), c), i)
            })
            .collect();
        // Farthest first; the lower index first among equals.
        far.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut far = far.into_iter();
        for &j in &empty {
            // A point alone in its cluster stays there.
            let Some((_, i)) = far.find(|&(_, i)| count[bounds[i].label as usize] > 1) else {
                break;
            };
            let old = bounds[i].label as usize;
            for (d, &x) in points.row(i).iter().enumerate() {
                sum[old * dim + d] -= f64::from(x);
                sum[j * dim + d] = f64::from(x);
            }
            count[old] -= 1;
            count[j] = 1;
        }
    }
    sum.chunks_exact(dim)
        .zip(&count)
        .enumerate()
        .flat_map(|(j, (s, &c))| {
            // A cluster still empty (fewer distinct points than k) keeps its centre.
            let keep = &centres[j * dim..(j + 1) * dim];
            s.iter()
                .zip(keep)
                .map(move |(&x, &old)| if c == 0 { old } else { (x / c as f64) as f32 })
        })
        .collect()
}

/// Sum of squared distances of the points to their centres, in double precision.
fn inertia(points: &Points, labels: &[u32], centres: &[f32]) -> f64 {
    let dim = points.dim;
    labels
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(chunk, labels)| {
            labels
                .iter()
                .enumerate()
                .map(|(offset, &l)| {
                    distance2_exact(
                        points.row(chunk * CHUNK + offset),
                        &centres[l as usize * dim..][..dim],
                    )
                })
                .sum::<f64>()
        })
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

/// The best of `n_init` seeded runs: (labels, centres, inertia).
fn fit(points: &Points, k: usize, params: &ClusterParams) -> (Vec<u32>, Centres, f64) {
    let tol = TOLERANCE * points.mean_variance();
    (0..params.n_init.max(1) as u64)
        .into_par_iter()
        .map(|run| {
            // One stream per run, derived from the seed, so that runs are
            // independent of each other and of the order they finish in.
            let seed = params
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(run);
            let (labels, centres) = lloyd(points, k, params.max_iter, tol, seed);
            let inertia = inertia(points, &labels, &centres);
            (labels, centres, inertia)
        })
        .collect::<Vec<_>>()
        .into_iter()
        // The first of equal runs wins.
        .reduce(|a, b| if b.2 < a.2 { b } else { a })
        .expect("at least one run")
}

/// Mean silhouette over a seeded sample of at most `sample` points (as
/// scikit-learn's `silhouette_score(sample_size=…)`); a singleton scores 0.
fn silhouette(points: &Points, labels: &[u32], k: usize, sample: usize, seed: u64) -> f64 {
    let n = points.len();
    let mut idx: Vec<usize> = (0..n).collect();
    if sample < n {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        idx.truncate(sample);
        idx.sort_unstable();
    }
    let scores: Vec<f64> = idx
        .par_iter()
        .map(|&i| {
            let mut sum = vec![0.0f64; k];
            let mut count = vec![0usize; k];
            for &j in &idx {
                if i != j {
                    let l = labels[j] as usize;
                    sum[l] += f64::from(distance2(points.row(i), points.row(j)).sqrt());
                    count[l] += 1;
                }
            }
            let own = labels[i] as usize;
            if count[own] == 0 {
                return 0.0; // a singleton
            }
            let a = sum[own] / count[own] as f64;
            let b = (0..k)
                .filter(|&c| c != own && count[c] > 0)
                .map(|c| sum[c] / count[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if b.is_finite() {
                (b - a) / a.max(b)
            } else {
                0.0
            }
        })
        .collect();
    scores.iter().sum::<f64>() / idx.len() as f64
}

/// Clusters the vectors: with `params.k`, or by silhouette over `k_min..=k_max`.
pub fn cluster(vectors: &[Vec<f32>], params: &ClusterParams) -> anyhow::Result<Clustering> {
    let n = vectors.len();
    if n < 2 {
        bail!("clustering needs at least 2 embeddings, got {n}");
    }
    let points = Points::new(vectors)?;
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
        // The silhouette is only defined for k < n.
        None if params.k_min >= n => bail!(
            "cluster: {n} embeddings are too few to choose k by silhouette from \
             cluster.k_min = {} (that needs more than k_min embeddings); \
             set cluster.k, or lower cluster.k_min",
            params.k_min
        ),
        None => (params.k_min..=params.k_max.min(n - 1)).collect(),
    };
    /// One k's clustering, while the search runs.
    struct Tried {
        k: usize,
        labels: Vec<u32>,
        centres: Centres,
        inertia: f64,
        silhouette: Option<f64>,
    }
    let mut best: Option<Tried> = None;
    let mut search = Vec::new();
    for &k in &candidates {
        let (labels, centres, inertia) = fit(&points, k, params);
        let sil = (k > 1 && k < n)
            .then(|| silhouette(&points, &labels, k, params.silhouette_sample, params.seed));
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
            (
                Some(Tried {
                    silhouette: Some(b),
                    ..
                }),
                Some(s),
            ) => s > *b,
            _ => false,
        };
        if better {
            best = Some(Tried {
                k,
                labels,
                centres,
                inertia,
                silhouette: sil,
            });
        }
    }
    let Some(Tried {
        k,
        labels,
        centres,
        inertia,
        silhouette,
    }) = best
    else {
        unreachable!("candidates is never empty: k is fixed, or k_min < n");
    };
    let dim = points.dim;
    let distances = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| distance2_exact(points.row(i), &centres[l as usize * dim..][..dim]).sqrt())
        .collect();
    Ok(Clustering {
        k,
        labels,
        distances,
        centroids: centres.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
        inertia,
        silhouette,
        search,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(k: usize) -> ClusterParams {
        ClusterParams {
            k: Some(k),
            ..ClusterParams::default()
        }
    }

    /// Three tight blobs far apart, shuffled.
    fn blobs(per: usize, dim: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows: Vec<(Vec<f32>, usize)> = (0..3 * per)
            .map(|i| {
                let blob = i % 3;
                let v = (0..dim)
                    .map(|d| {
                        let centre = if d == blob { 10.0 } else { 0.0 };
                        centre + rng.random_range(-0.5..0.5)
                    })
                    .collect();
                (v, blob)
            })
            .collect();
        rows.shuffle(&mut rng);
        rows.into_iter().unzip()
    }

    #[test]
    fn separated_blobs_are_found_exactly() {
        let (v, truth) = blobs(200, 8, 1);
        let c = cluster(&v, &params(3)).unwrap();
        // Same partition as the truth, whatever the label numbering.
        for i in 0..v.len() {
            for j in 0..v.len() {
                assert_eq!(c.labels[i] == c.labels[j], truth[i] == truth[j]);
            }
        }
        assert_eq!(c.sizes(), vec![200, 200, 200]);
    }

    /// Points with these labels and no bounds (what `means` reads).
    fn labelled(labels: &[u32]) -> Vec<Bound> {
        labels
            .iter()
            .map(|&label| Bound {
                label,
                upper: 0.0,
                lower: 0.0,
            })
            .collect()
    }

    #[test]
    fn hamerly_gives_lloyds_result() {
        // Plain Lloyd from the same seeding, every distance computed.
        let (v, _) = blobs(300, 16, 7);
        let points = Points::new(&v).unwrap();
        let (labels, centres) = lloyd(&points, 5, 300, 0.0, 3);
        let mut plain = seed_centres(&points, 5, &mut ChaCha8Rng::seed_from_u64(3));
        let dim = points.dim;
        let mut plain_labels = vec![0u32; points.len()];
        for _ in 0..300 {
            let next: Vec<u32> = (0..points.len())
                .map(|i| nearest_two(points.row(i), &plain, dim).0)
                .collect();
            let bounds = labelled(&next);
            let moved = next != plain_labels;
            plain_labels = next;
            if !moved {
                break;
            }
            plain = means(&points, &bounds, &plain, 5);
        }
        assert_eq!(labels, plain_labels);
        let diff = centres
            .iter()
            .zip(&plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "centres differ by {diff}");
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        let (v, _) = blobs(2000, 12, 3);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| cluster(&v, &params(6)).unwrap())
        };
        let (one, four) = (run(1), run(4));
        assert_eq!(one.labels, four.labels);
        assert_eq!(one.centroids, four.centroids);
        assert_eq!(one.inertia.to_bits(), four.inertia.to_bits());
    }

    #[test]
    fn an_empty_cluster_takes_the_farthest_point() {
        let v: Vec<Vec<f32>> = vec![vec![0.0], vec![1.0], vec![10.0]];
        let points = Points::new(&v).unwrap();
        let bounds = labelled(&[0, 0, 0]);
        let next = means(&points, &bounds, &[0.0, 5.0], 2);
        // 10 leaves cluster 0 for the empty cluster 1.
        assert_eq!(next, vec![0.5, 10.0]);
    }

    #[test]
    fn too_few_embeddings_to_search_k_is_an_error_naming_the_keys() {
        let v = vec![vec![0.0f32], vec![1.0]];
        let p = ClusterParams {
            k_min: 2,
            ..ClusterParams::default()
        };
        let err = cluster(&v, &p).unwrap_err().to_string();
        assert!(
            err.contains("2 embeddings") && err.contains("cluster.k"),
            "{err}"
        );
    }

    #[test]
    fn ragged_or_non_finite_embeddings_are_refused() {
        let ragged = vec![vec![0.0f32, 1.0], vec![1.0]];
        let err = cluster(&ragged, &params(1)).unwrap_err().to_string();
        assert!(err.contains("embedding 1 has 1 values"), "{err}");
        let nan = vec![vec![0.0f32], vec![f32::NAN]];
        let err = cluster(&nan, &params(1)).unwrap_err().to_string();
        assert!(err.contains("embedding 1"), "{err}");
    }
}
