//! Distances between metric distributions: the 1-D Wasserstein (earth
//! mover's) distance between two samples, scaled by the reference's spread;
//! and means with their bootstrap intervals.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::quality::{NAMES, Quality};

fn finite(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// W1 between two samples: the area between their empirical CDFs. NaN if either is empty.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = (finite(a.iter().copied()), finite(b.iter().copied()));
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut points: Vec<f64> = a.iter().chain(&b).copied().collect();
    points.sort_by(f64::total_cmp);
    let cdf = |s: &[f64], x: f64| s.partition_point(|v| *v <= x) as f64 / s.len() as f64;
    points
        .windows(2)
        .map(|w| (cdf(&a, w[0]) - cdf(&b, w[0])).abs() * (w[1] - w[0]))
        .sum()
}

/// The Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs (0 to 1).
pub fn kolmogorov_smirnov(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = (finite(a.iter().copied()), finite(b.iter().copied()));
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let cdf = |s: &[f64], x: f64| s.partition_point(|v| *v <= x) as f64 / s.len() as f64;
    a.iter()
        .chain(&b)
        .map(|&x| (cdf(&a, x) - cdf(&b, x)).abs())
        .fold(0.0, f64::max)
}

/// Mean and population standard deviation of the finite values.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let v = finite(values.iter().copied());
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (
        mean,
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
    )
}

/// Each quality metric's samples, in [`NAMES`] order.
pub fn columns<'a>(qs: impl Iterator<Item = &'a Quality>) -> Vec<Vec<f64>> {
    let mut cols = vec![Vec::new(); NAMES.len()];
    for q in qs {
        for (c, v) in cols.iter_mut().zip(q.values()) {
            c.push(v);
        }
    }
    cols
}

/// The mean over quality metrics of the Kolmogorov–Smirnov statistic between
/// the generated and the test distributions: 0 when they match, 1 when they
/// do not overlap. Scale-free, so metrics with tiny spreads do not dominate.
pub fn quality_distance<'a>(
    generated: impl Iterator<Item = &'a Quality>,
    test: impl Iterator<Item = &'a Quality>,
) -> f64 {
    let (g, t) = (columns(generated), columns(test));
    let ks: Vec<f64> = g
        .iter()
        .zip(&t)
        .map(|(g, t)| kolmogorov_smirnov(g, t))
        .filter(|d| d.is_finite())
        .collect();
    if ks.is_empty() {
        f64::NAN
    } else {
        ks.iter().sum::<f64>() / ks.len() as f64
    }
}

/// Bootstrap resamples per interval.
const RESAMPLES: usize = 2000;

/// A mean over prompts with its 95 % percentile-bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Prompts that asked for the attribute.
    pub n: usize,
}

/// The mean of `values` (each with its group: the piece a caption
/// describes) and its 95 % bootstrap interval. Groups are resampled whole,
/// since one piece's captions are not independent of each other. Seeded,
/// so reruns agree.
pub fn bootstrap(values: &[(usize, f64)], seed: u64) -> Option<Interval> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mut groups: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    for &(g, v) in values {
        let e = groups.entry(g).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let groups: Vec<(f64, usize)> = groups.into_values().collect();
    let mean = values.iter().map(|v| v.1).sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let (sum, count) = (0..groups.len())
                .map(|_| groups[rng.random_range(0..groups.len())])
                .fold((0.0, 0), |(s, c), (gs, gc)| (s + gs, c + gc));
            sum / count as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    // The q-quantile of the resampled means: the ⌈qR⌉-th smallest.
    let at = |q: f64| means[((q * RESAMPLES as f64).ceil() as usize).clamp(1, RESAMPLES) - 1];
    Some(Interval {
        mean,
        low: at(0.025),
        high: at(0.975),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kolmogorov_smirnov_is_the_largest_cdf_gap() {
        assert_eq!(kolmogorov_smirnov(&[0.0, 1.0], &[0.0, 1.0]), 0.0);
        assert_eq!(kolmogorov_smirnov(&[0.0, 1.0], &[5.0, 6.0]), 1.0);
        assert_eq!(kolmogorov_smirnov(&[0.0, 1.0, 2.0, 3.0], &[2.0, 3.0]), 0.5);
    }

    #[test]
    fn wasserstein_is_the_shift_between_equal_shapes() {
        assert!((wasserstein(&[0.0, 1.0, 2.0], &[5.0, 6.0, 7.0]) - 5.0).abs() < 1e-12);
        assert_eq!(wasserstein(&[1.0, 2.0], &[2.0, 1.0]), 0.0);
        assert!((wasserstein(&[0.0], &[0.0, 1.0]) - 0.5).abs() < 1e-12);
        assert!(wasserstein(&[], &[1.0]).is_nan());
        assert_eq!(
            wasserstein(&[f64::NAN, 1.0], &[1.0]),
            0.0,
            "NaNs are left out"
        );
    }

    #[test]
    fn the_bootstrap_interval_holds_the_mean_and_narrows_with_more_prompts() {
        // Every prompt its own group: the plain bootstrap.
        let own = |n: usize| -> Vec<(usize, f64)> {
            (0..n)
                .map(|i| (i, f64::from(u8::from(i % 4 == 0))))
                .collect()
        };
        let a = bootstrap(&own(20), 1).unwrap();
        let b = bootstrap(&own(400), 1).unwrap();
        assert_eq!((a.mean, b.mean, a.n, b.n), (0.25, 0.25, 20, 400));
        assert!(a.low < 0.25 && 0.25 < a.high, "{a:?}");
        assert!(b.low < 0.25 && 0.25 < b.high, "{b:?}");
        assert!(b.high - b.low < (a.high - a.low) / 2.0, "{a:?} {b:?}");
        // The binomial standard error at n = 400 is 0.0217: the interval is about ±0.042.
        assert!(((b.high - b.low) / 2.0 - 0.042).abs() < 0.01, "{b:?}");
        assert_eq!(bootstrap(&[], 1), None);
        assert_eq!(bootstrap(&own(400), 1), Some(b), "seeded");
        // The same 400 values as 20 pieces of 20 captions that agree within
        // a piece: only 20 independent draws, so the interval is as wide as
        // 20 prompts' rather than 400's.
        let grouped: Vec<(usize, f64)> = (0..400)
            .map(|i| (i / 20, f64::from(u8::from(i / 20 % 4 == 0))))
            .collect();
        let c = bootstrap(&grouped, 1).unwrap();
        assert_eq!((c.mean, c.n), (0.25, 400));
        assert!(
            c.high - c.low > 3.0 * (b.high - b.low),
            "{c:?} against {b:?}"
        );
    }
}
