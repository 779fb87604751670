//! Distances between metric distributions: the 1-D Wasserstein (earth
//! mover's) distance between two samples, scaled by the reference's spread.

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
}
