//! The report's held-out section: the table of systems and the plot of
//! each rate against the guidance scale.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::evaluate::report::pct;
use crate::plot::lines;

/// The report's held-out section, from `metrics.json`'s `heldout`: the
/// table and the guidance plot (`guidance.png`, when more than one scale was measured).
pub fn write_section(md: &mut String, out: &Path, h: &Value) -> anyhow::Result<()> {
    let Some(systems) = h["systems"].as_array() else {
        return Ok(());
    };
    let _ = writeln!(md, "\n## Held-out captions\n");
    let _ = writeln!(
        md,
        "{} MidiCaps-style captions of the {} test-split pieces (describe's `captions.parquet`; none is a training text), {} music tokens each, the same seed for every system. Mean [95 % bootstrap interval] over the prompts that asked for the attribute (n). text2midi reports TB 39.7 %, TBT 65.8 %, CK 33.6 %, CKD 35.5 % on MidiCaps' own test captions, not these. *Strict* writes what the caption names (see `amt generate --strict`): its tempo-bin and meter rates, and the instrument precision of every piece with notes, are met by construction and are never the model's free numbers. *Captioned pieces* scores each test piece against its own captions: the ceiling where a caption and the measures disagree.\n",
        h["prompts"], h["pieces"], h["tokens"]
    );
    let measures = [
        ("TB", "tempo_bin_match"),
        ("TBT", "tempo_bin_within_one"),
        ("CK", "key_match"),
        ("CKD", "key_match_relaxed"),
        ("meter", "time_signature_match"),
        ("instr. P", "instrument_precision"),
        ("instr. R", "instrument_recall"),
        ("instr. F1", "instrument_f1"),
        ("all asked", "attributes_satisfied"),
    ];
    let names: Vec<&str> = measures.iter().map(|m| m.0).collect();
    let _ = writeln!(md, "| system | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(measures.len()));
    for s in systems {
        let cells: Vec<String> = measures
            .iter()
            .map(|(_, key)| {
                let v = &s["scores"][key];
                if v.is_null() {
                    "n/a".to_owned()
                } else {
                    format!(
                        "{} [{}, {}] ({})",
                        pct(&v["mean"]),
                        pct(&v["low"]),
                        pct(&v["high"]),
                        v["n"]
                    )
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} |",
            s["system"].as_str().unwrap_or("?"),
            cells.join(" | ")
        );
    }
    let series = guidance_curves(systems);
    if series.iter().any(|(_, points)| points.len() > 1) {
        let refs: Vec<(&str, &[(f64, f64)])> =
            series.iter().map(|(n, p)| (*n, p.as_slice())).collect();
        lines(
            &out.join("guidance.png"),
            "held-out adherence by guidance scale",
            "guidance scale",
            "%",
            &refs,
        )?;
        let _ = writeln!(md, "\n![adherence by guidance scale](guidance.png)");
    }
    Ok(())
}

/// Each rate of the free model's rows against their guidance scale, in
/// percent (strict and the baselines are other systems, not points on it).
fn guidance_curves(systems: &[Value]) -> Vec<(&'static str, Vec<(f64, f64)>)> {
    let free: Vec<&Value> = systems.iter().filter(|s| s["kind"] == "model").collect();
    [
        ("tempo bin", "tempo_bin_match"),
        ("key", "key_match"),
        ("meter", "time_signature_match"),
        ("instrument F1", "instrument_f1"),
    ]
    .into_iter()
    .map(|(name, key)| {
        let points = free
            .iter()
            .filter_map(|s| {
                Some((
                    s["guidance"].as_f64()?,
                    s["scores"][key]["mean"].as_f64()? * 100.0,
                ))
            })
            .collect();
        (name, points)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guidance_plot_shows_the_free_model_only() {
        let row = |kind: &str, g: Option<f64>, tb: f64| serde_json::json!({"kind": kind, "guidance": g, "scores": {"tempo_bin_match": {"mean": tb}}});
        let rows = [
            row("model", Some(1.0), 0.3),
            row("model", Some(2.0), 0.4),
            row("strict", Some(2.0), 1.0),
            row("untrained", Some(1.0), 0.1),
            row("random", None, 0.1),
        ];
        let curves = guidance_curves(&rows);
        assert_eq!(curves[0], ("tempo bin", vec![(1.0, 30.0), (2.0, 40.0)]));
        assert!(curves[1].1.is_empty(), "no key rates given");
    }
}
