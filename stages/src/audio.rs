//! Hearing the music: MIDI rendered to a WAV file with a General MIDI
//! SoundFont (rustysynth, in process). `amt render`, `amt generate --wav` and
//! the studio's audio player all come through here.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustysynth::{MidiFile, MidiFileSequencer, SoundFont, Synthesizer, SynthesizerSettings};

/// Where Debian's General MIDI SoundFont packages put their files, best first
/// (`default-GM.sf2` is the alternative the installed packages point at).
pub const SYSTEM_SOUNDFONTS: [&str; 3] = [
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
];

/// The environment variable naming a SoundFont to use instead.
pub const SOUNDFONT_ENV: &str = "AMT_SOUNDFONT";

/// Output sample rate (Hz).
pub const SAMPLE_RATE: u32 = 44_100;

/// Seconds rendered after the last event, so that released notes ring out.
const TAIL_SECONDS: f64 = 1.5;

/// The loudest sample written: about −1 dBFS. Every render is scaled as a
/// whole to peak here, so nothing clips and a solo flute is as loud as a band.
const PEAK: f32 = 0.89;

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error(
        "no General MIDI SoundFont found (looked for ${SOUNDFONT_ENV} and {}): install \
         Debian's timgm6mb-soundfont (scripts/setup.sh does) or pass --soundfont FILE",
        SYSTEM_SOUNDFONTS.join(", ")
    )]
    NoSoundFont,
    // `reason`, not `source`: the message already says it, and a source
    // would print it twice in an error chain.
    #[error("{path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path}: not a usable SoundFont: {reason}")]
    SoundFont {
        path: PathBuf,
        reason: rustysynth::SoundFontError,
    },
    #[error("not a MIDI file the synthesizer can play: {0}")]
    Midi(String),
    #[error("the synthesizer failed on this file: {0}")]
    Crashed(String),
    #[error("rendering was stopped before the piece was finished")]
    Stopped,
    #[error("the synthesizer refused its settings: {0}")]
    Synth(rustysynth::SynthesizerError),
    #[error("the piece lasts {seconds:.0} s; between 0 and {limit:.0} s are rendered")]
    TooLong { seconds: f64, limit: f64 },
    #[error("writing the WAV data: {0}")]
    Wav(#[from] hound::Error),
}

/// The SoundFont to use: `explicit`, else `$AMT_SOUNDFONT`, else the first
/// of [`SYSTEM_SOUNDFONTS`] that exists.
pub fn find_soundfont(explicit: Option<&Path>) -> Result<PathBuf, AudioError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(SOUNDFONT_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    SYSTEM_SOUNDFONTS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(AudioError::NoSoundFont)
}

/// A loaded SoundFont, shared by any number of renders.
#[derive(Clone)]
pub struct Synth {
    sound_font: Arc<SoundFont>,
    path: PathBuf,
    /// The longest piece rendered, in seconds (bounds memory: 8 bytes a frame).
    max_seconds: f64,
}

/// Stereo audio at [`SAMPLE_RATE`].
pub struct Audio {
    pub left: Vec<f32>,
    pub right: Vec<f32>,
}

impl Synth {
    /// Loads a SoundFont file.
    pub fn load(path: &Path) -> Result<Self, AudioError> {
        let mut file = std::fs::File::open(path).map_err(|reason| AudioError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let sound_font =
            SoundFont::new(&mut std::io::BufReader::new(&mut file)).map_err(|reason| {
                AudioError::SoundFont {
                    path: path.to_path_buf(),
                    reason,
                }
            })?;
        Ok(Self {
            sound_font: Arc::new(sound_font),
            path: path.to_path_buf(),
            max_seconds: 600.0,
        })
    }

    /// The same synth refusing pieces longer than `seconds`.
    pub fn with_max_seconds(mut self, seconds: f64) -> Self {
        self.max_seconds = seconds;
        self
    }

    /// The SoundFont file it plays.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renders a Standard MIDI File: its length plus a short release tail.
    pub fn render(&self, midi: &[u8]) -> Result<Audio, AudioError> {
        self.render_unless(midi, &|| false)
    }

    /// [`Self::render`], giving up with [`AudioError::Stopped`] as soon as
    /// `stop()` says so (asked every second of audio).
    pub fn render_unless(&self, midi: &[u8], stop: &dyn Fn() -> bool) -> Result<Audio, AudioError> {
        playable(midi)?;
        // The synthesizer is not fuzzed: a panic in it is an error for this file, not a crash.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.synthesize(midi, stop)))
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(AudioError::Crashed(why))
            })
    }

    fn synthesize(&self, midi: &[u8], stop: &dyn Fn() -> bool) -> Result<Audio, AudioError> {
        let midi =
            Arc::new(MidiFile::new(&mut &midi[..]).map_err(|e| AudioError::Midi(e.to_string()))?);
        let seconds = midi.get_length();
        if !(0.0..=self.max_seconds).contains(&seconds) {
            return Err(AudioError::TooLong {
                seconds,
                limit: self.max_seconds,
            });
        }
        let settings = SynthesizerSettings::new(SAMPLE_RATE as i32);
        let synth = Synthesizer::new(&self.sound_font, &settings).map_err(AudioError::Synth)?;
        let mut sequencer = MidiFileSequencer::new(synth);
        sequencer.play(&midi, false);
        let frames = ((seconds + TAIL_SECONDS) * f64::from(SAMPLE_RATE)).ceil() as usize;
        let mut audio = Audio {
            left: vec![0.0; frames],
            right: vec![0.0; frames],
        };
        let block = SAMPLE_RATE as usize;
        for (left, right) in audio
            .left
            .chunks_mut(block)
            .zip(audio.right.chunks_mut(block))
        {
            if stop() {
                return Err(AudioError::Stopped);
            }
            sequencer.render(left, right);
        }
        audio.normalize();
        Ok(audio)
    }
}

impl Audio {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.left.len()
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(SAMPLE_RATE)
    }

    /// The largest absolute sample.
    pub fn peak(&self) -> f32 {
        self.left
            .iter()
            .chain(&self.right)
            .fold(0.0_f32, |m, s| m.max(s.abs()))
    }

    /// Scales the whole piece to peak at [`PEAK`] (silence stays silence).
    fn normalize(&mut self) {
        let peak = self.peak();
        if peak > 0.0 {
            let gain = PEAK / peak;
            for s in self.left.iter_mut().chain(self.right.iter_mut()) {
                *s *= gain;
            }
        }
    }

    /// Writes 16-bit stereo PCM WAV.
    pub fn write_wav<W: Write + Seek>(&self, out: W) -> Result<(), AudioError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut wav = hound::WavWriter::new(out, spec)?;
        let mut samples = wav.get_i16_writer(2 * self.frames() as u32);
        for (l, r) in self.left.iter().zip(&self.right) {
            samples.write_sample(to_i16(*l));
            samples.write_sample(to_i16(*r));
        }
        samples.flush()?;
        wav.finalize()?;
        Ok(())
    }

    /// The WAV file's bytes.
    pub fn wav_bytes(&self) -> Result<Vec<u8>, AudioError> {
        let mut bytes = std::io::Cursor::new(Vec::with_capacity(44 + 4 * self.frames()));
        self.write_wav(&mut bytes)?;
        Ok(bytes.into_inner())
    }
}

/// Checks a file with amt's own reader (fuzzed, and it names what is wrong)
/// for what the synthesizer cannot play.
fn playable(midi: &[u8]) -> Result<(), AudioError> {
    let score = crate::midi::parse(midi).map_err(|e| AudioError::Midi(e.to_string()))?;
    if score.n_tracks == 0 {
        return Err(AudioError::Midi("it has no tracks".into()));
    }
    if !matches!(score.division, crate::midi::tempo::Division::Metrical(_)) {
        return Err(AudioError::Midi(
            "SMPTE timing is not supported, only ticks per quarter note".into(),
        ));
    }
    Ok(())
}

fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_render_peaks_just_under_full_scale() {
        let mut loud = Audio {
            left: vec![0.0, 2.0, -4.0],
            right: vec![1.0, 0.0, 0.0],
        };
        loud.normalize();
        assert!((loud.peak() - PEAK).abs() < 1e-6);
        assert!((loud.left[1] - 2.0 * PEAK / 4.0).abs() < 1e-6);
        let mut quiet = Audio {
            left: vec![0.25],
            right: vec![-0.5],
        };
        quiet.normalize();
        assert!((quiet.right[0] + PEAK).abs() < 1e-6 && (quiet.left[0] - PEAK / 2.0).abs() < 1e-6);
        let mut silent = Audio {
            left: vec![0.0; 4],
            right: vec![0.0; 4],
        };
        silent.normalize();
        assert_eq!(silent.peak(), 0.0);
    }

    #[test]
    fn wav_holds_every_frame_in_16_bits() {
        let audio = Audio {
            left: vec![0.0, 0.5, -1.0],
            right: vec![1.0, -0.5, 0.0],
        };
        let bytes = audio.wav_bytes().unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.spec().sample_rate, SAMPLE_RATE);
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples, [0, 32767, 16384, -16384, -32767, 0]);
    }

    #[test]
    fn what_the_synthesizer_cannot_play_is_refused_first() {
        let header = |tracks: u8, division: [u8; 2]| {
            let mut m = b"MThd\0\0\0\x06\0\x01\0".to_vec();
            m.push(tracks);
            m.extend(division);
            m
        };
        let no_tracks = header(0, [0, 96]);
        assert!(
            playable(&no_tracks)
                .unwrap_err()
                .to_string()
                .contains("no tracks")
        );
        let mut smpte = header(1, [0xe8, 40]);
        smpte.extend(b"MTrk\0\0\0\x04\0\xff\x2f\0");
        assert!(playable(&smpte).unwrap_err().to_string().contains("SMPTE"));
        assert!(playable(b"RIFF").is_err());
        let mut ok = header(1, [0, 96]);
        ok.extend(b"MTrk\0\0\0\x04\0\xff\x2f\0");
        playable(&ok).unwrap();
    }

    #[test]
    fn an_explicit_soundfont_wins() {
        let p = Path::new("/nowhere/custom.sf2");
        assert_eq!(find_soundfont(Some(p)).unwrap(), p);
    }
}
