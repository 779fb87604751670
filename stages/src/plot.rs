//! PNG charts for reports: line plots, histograms and piano rolls.
//!
//! Text is drawn with DejaVu Sans (Debian's `fonts-dejavu-core`, which the
//! set-up installs). Without the font, charts are drawn without text rather
//! than failing the stage.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::anyhow;
use plotters::prelude::*;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the font once; false when none was found.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                // The font lives as long as the process, as plotters requires.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!("warning: DejaVuSans.ttf not found (apt-get install fonts-dejavu-core); charts have no text");
        false
    })
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {}: {e:?}", path.display())
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Named series of `(x, y)` points as lines on one chart.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> anyhow::Result<()> {
    let text = font_ready();
    let root = BitMapBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let (x0, x1) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
    let (y0, y1) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)));
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(12)
        .x_label_area_size(if text { 36 } else { 8 })
        .y_label_area_size(if text { 56 } else { 8 });
    if text {
        builder.caption(title, ("sans-serif", 20));
    }
    let mut chart = builder
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err(path))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(x_label).y_desc(y_label);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(err(path))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let drawn = chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err(path))?;
        if text {
            drawn.label(*name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// Overlaid histograms of named samples over shared bins.
pub fn histograms(
    path: &Path,
    title: &str,
    x_label: &str,
    samples: &[(&str, &[f64])],
    bins: usize,
) -> anyhow::Result<()> {
    let text = font_ready();
    let (lo, hi) = bounds(samples.iter().flat_map(|s| s.1.iter().copied()));
    let width = (hi - lo) / bins as f64;
    let counts: Vec<Vec<f64>> = samples
        .iter()
        .map(|(_, xs)| {
            let mut c = vec![0.0; bins];
            for x in xs.iter().filter(|x| x.is_finite()) {
                c[(((x - lo) / width) as usize).min(bins - 1)] += 1.0;
            }
            // Densities, so samples of different sizes compare.
            let n = xs.len().max(1) as f64;
            c.iter().map(|v| v / n).collect()
        })
        .collect();
    let top = counts
        .iter()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9)
        * 1.1;
    let root = BitMapBackend::new(path, (480, 300)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(10)
        .x_label_area_size(if text { 32 } else { 8 })
        .y_label_area_size(if text { 48 } else { 8 });
    if text {
        builder.caption(title, ("sans-serif", 16));
    }
    let mut chart = builder
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(err(path))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(x_label).y_desc("share");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(err(path))?;
    for (i, ((name, _), c)) in samples.iter().zip(&counts).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let bars = c.iter().enumerate().map(move |(b, &v)| {
            let x = lo + b as f64 * width;
            Rectangle::new([(x, 0.0), (x + width, v)], color.mix(0.45).filled())
        });
        let drawn = chart.draw_series(bars).map_err(err(path))?;
        if text {
            drawn.label(*name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.mix(0.45).filled())
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// A note to draw: start and end in seconds, pitch, and a colour index (its instrument).
pub struct RollNote {
    pub start: f64,
    pub end: f64,
    pub pitch: u8,
    pub track: usize,
}

/// A piano roll: time across, pitch up, one colour per instrument.
pub fn piano_roll(path: &Path, title: &str, notes: &[RollNote]) -> anyhow::Result<()> {
    let text = font_ready();
    let end = notes.iter().map(|n| n.end).fold(1.0f64, f64::max);
    let (lo, hi) = notes
        .iter()
        .fold((127u8, 0u8), |(a, b), n| (a.min(n.pitch), b.max(n.pitch)));
    let (lo, hi) = if lo > hi {
        (48.0, 72.0)
    } else {
        (f64::from(lo) - 2.0, f64::from(hi) + 3.0)
    };
    let root = BitMapBackend::new(path, (720, 280)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(10)
        .x_label_area_size(if text { 30 } else { 8 })
        .y_label_area_size(if text { 40 } else { 8 });
    if text {
        builder.caption(title, ("sans-serif", 15));
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..end, lo..hi)
        .map_err(err(path))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds").y_desc("pitch");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(err(path))?;
    chart
        .draw_series(notes.iter().map(|n| {
            let p = f64::from(n.pitch);
            Rectangle::new(
                [(n.start, p), (n.end.max(n.start + 0.02), p + 0.9)],
                COLORS[n.track % COLORS.len()].filled(),
            )
        }))
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}
