//! PNG charts for reports: line plots, histograms and piano rolls.
//!
//! Text is drawn with DejaVu Sans (Debian's `fonts-dejavu-core`, which the
//! set-up installs). Without the font, charts are drawn without text rather
//! than failing the stage.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::anyhow;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// The font file charts would be drawn with, if the machine has one. Its
/// bytes are in every PNG, so `amt-stage --probe` reports its digest.
pub fn font_path() -> Option<&'static Path> {
    FONT_PATHS.iter().map(Path::new).find(|p| p.is_file())
}

/// Registers the font once; false when none was found.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if let Some(bytes) = font_path().and_then(|p| std::fs::read(p).ok()) {
            // The font lives as long as the process, as plotters requires.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
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

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What a chart shows around its data.
struct Frame<'t> {
    title: &'t str,
    x_label: &'t str,
    y_label: &'t str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
}

/// A white canvas with the title and labelled axes (bare axes without the font).
fn chart<'a, 'b>(
    root: &'a Area<'b>,
    path: &Path,
    f: Frame<'_>,
    text: bool,
) -> anyhow::Result<Chart<'a, 'b>> {
    root.fill(&WHITE).map_err(err(path))?;
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(10)
        .x_label_area_size(if text { 32 } else { 8 })
        .y_label_area_size(if text { 52 } else { 8 });
    if text {
        builder.caption(f.title, ("sans-serif", 16));
    }
    let mut chart = builder.build_cartesian_2d(f.x, f.y).map_err(err(path))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(f.x_label).y_desc(f.y_label);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(err(path))?;
    Ok(chart)
}

/// Draws the series' legend (only with the font) and writes the file.
fn finish<'a, 'b>(
    root: &'a Area<'b>,
    chart: &mut Chart<'a, 'b>,
    path: &Path,
    legend: bool,
) -> anyhow::Result<()> {
    if legend {
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
    let (x0, x1) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
    let (y0, y1) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)));
    let mut chart = chart(
        &root,
        path,
        Frame {
            title,
            x_label,
            y_label,
            x: x0..x1,
            y: y0..y1,
        },
        text,
    )?;
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
    finish(&root, &mut chart, path, text)
}

/// Overlaid histograms of named samples over shared bins, as shares of each sample.
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
    let shares: Vec<Vec<f64>> = samples
        .iter()
        .map(|(_, xs)| {
            let mut c = vec![0.0; bins];
            for x in xs.iter().filter(|x| x.is_finite()) {
                c[(((x - lo) / width) as usize).min(bins - 1)] += 1.0;
            }
            // Shares, so samples of different sizes compare.
            let n = xs.len().max(1) as f64;
            c.iter().map(|v| v / n).collect()
        })
        .collect();
    let top = shares
        .iter()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9)
        * 1.1;
    let root = BitMapBackend::new(path, (480, 300)).into_drawing_area();
    let mut chart = chart(
        &root,
        path,
        Frame {
            title,
            x_label,
            y_label: "share",
            x: lo..hi,
            y: 0.0..top,
        },
        text,
    )?;
    for (i, ((name, _), c)) in samples.iter().zip(&shares).enumerate() {
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
    finish(&root, &mut chart, path, text)
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
    let mut chart = chart(
        &root,
        path,
        Frame {
            title,
            x_label: "seconds",
            y_label: "pitch",
            x: 0.0..end,
            y: lo..hi,
        },
        text,
    )?;
    chart
        .draw_series(notes.iter().map(|n| {
            let p = f64::from(n.pitch);
            Rectangle::new(
                [(n.start, p), (n.end.max(n.start + 0.02), p + 0.9)],
                COLORS[n.track % COLORS.len()].filled(),
            )
        }))
        .map_err(err(path))?;
    finish(&root, &mut chart, path, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG"))
    }

    #[test]
    fn every_chart_writes_a_png_even_from_degenerate_data() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("lines.png"), dir.path().join("hist.png"));
        lines(
            &a,
            "Loss",
            "step",
            "loss",
            &[("train", &[(1.0, 3.0), (2.0, 2.0)]), ("validation", &[])],
        )
        .unwrap();
        histograms(
            &b,
            "x",
            "x",
            &[("one value", &[1.0, 1.0]), ("none", &[])],
            8,
        )
        .unwrap();
        let c = dir.path().join("roll.png");
        piano_roll(&c, "empty", &[]).unwrap();
        let d = dir.path().join("roll2.png");
        piano_roll(
            &d,
            "two notes",
            &[
                RollNote {
                    start: 0.0,
                    end: 1.0,
                    pitch: 60,
                    track: 0,
                },
                RollNote {
                    start: 0.5,
                    end: 0.5,
                    pitch: 64,
                    track: 9,
                },
            ],
        )
        .unwrap();
        assert!([a, b, c, d].iter().all(|p| is_png(p)));
    }
}
