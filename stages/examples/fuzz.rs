//! The long fuzz run of `scripts/fuzz.sh`. `fuzz write DIR SEED N SOURCE…`
//! writes N damaged files (tests/common/mutate.rs) and `cases.txt` (name and
//! digest per line); `fuzz check DIR VERDICTS` reads each with amt and
//! reports the files pretty_midi read and amt refused, and any panic.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[path = "../tests/common/mutate.rs"]
mod mutate;

fn write(dir: &Path, seed: u64, n: u64, sources: &[PathBuf]) -> anyhow::Result<()> {
    let sources: Vec<Vec<u8>> = sources
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    std::fs::create_dir_all(dir)?;
    let mut list = String::new();
    for i in 0..n {
        let bytes = mutate::case(&sources, seed, i);
        let name = format!("{i:07}.mid");
        std::fs::write(dir.join(&name), &bytes)?;
        list.push_str(&format!(
            "{name} {}\n",
            &blake3::hash(&bytes).to_hex()[..16]
        ));
    }
    std::fs::write(dir.join("cases.txt"), list)?;
    Ok(())
}

fn check(dir: &Path, verdicts: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(verdicts)
        .with_context(|| format!("reading {}", verdicts.display()))?;
    let (mut both, mut only_theirs, mut only_ours, mut neither, mut panics) = (0, 0, 0, 0, 0);
    for line in text.lines() {
        let Some((name, theirs)) = line.split_once(' ') else {
            bail!("{}: `{line}` is not `NAME true|false`", verdicts.display());
        };
        let bytes = std::fs::read(dir.join(name))?;
        let ours = match std::panic::catch_unwind(|| amt_stages::midi::parse(&bytes)) {
            Ok(r) => r,
            Err(_) => {
                panics += 1;
                println!("{name}: amt panicked");
                continue;
            }
        };
        match (theirs == "true", ours) {
            (true, Ok(_)) => both += 1,
            (true, Err(e)) => {
                only_theirs += 1;
                println!("{name}: pretty_midi reads it, amt refuses: {e}");
            }
            (false, Ok(_)) => only_ours += 1,
            (false, Err(_)) => neither += 1,
        }
    }
    println!(
        "read by both {both}, only pretty_midi {only_theirs}, only amt {only_ours}, \
         neither {neither}, amt panics {panics}"
    );
    if only_theirs + panics > 0 {
        bail!("amt refused {only_theirs} files pretty_midi reads and panicked on {panics}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write", dir, seed, n, sources @ ..] if !sources.is_empty() => write(
            Path::new(dir),
            seed.parse()?,
            n.parse()?,
            &sources.iter().map(PathBuf::from).collect::<Vec<_>>(),
        ),
        ["check", dir, verdicts] => check(Path::new(dir), Path::new(verdicts)),
        _ => bail!("usage: fuzz write DIR SEED N SOURCE… | fuzz check DIR VERDICTS"),
    }
}
