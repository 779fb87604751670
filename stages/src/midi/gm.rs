//! General MIDI program names and families.

/// The 128 General MIDI program names, indexed by program number.
pub const PROGRAM_NAMES: [&str; 128] = [
    "Acoustic Grand Piano",
    "Bright Acoustic Piano",
    "Electric Grand Piano",
    "Honky-tonk Piano",
    "Electric Piano 1",
    "Electric Piano 2",
    "Harpsichord",
    "Clavinet",
    "Celesta",
    "Glockenspiel",
    "Music Box",
    "Vibraphone",
    "Marimba",
    "Xylophone",
    "Tubular Bells",
    "Dulcimer",
    "Drawbar Organ",
    "Percussive Organ",
    "Rock Organ",
    "Church Organ",
    "Reed Organ",
    "Accordion",
    "Harmonica",
    "Tango Accordion",
    "Acoustic Guitar (nylon)",
    "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)",
    "Electric Guitar (clean)",
    "Electric Guitar (muted)",
    "Overdriven Guitar",
    "Distortion Guitar",
    "Guitar Harmonics",
    "Acoustic Bass",
    "Electric Bass (finger)",
    "Electric Bass (pick)",
    "Fretless Bass",
    "Slap Bass 1",
    "Slap Bass 2",
    "Synth Bass 1",
    "Synth Bass 2",
    "Violin",
    "Viola",
    "Cello",
    "Contrabass",
    "Tremolo Strings",
    "Pizzicato Strings",
    "Orchestral Harp",
    "Timpani",
    "String Ensemble 1",
    "String Ensemble 2",
    "Synth Strings 1",
    "Synth Strings 2",
    "Choir Aahs",
    "Voice Oohs",
    "Synth Choir",
    "Orchestra Hit",
    "Trumpet",
    "Trombone",
    "Tuba",
    "Muted Trumpet",
    "French Horn",
    "Brass Section",
    "Synth Brass 1",
    "Synth Brass 2",
    "Soprano Sax",
    "Alto Sax",
    "Tenor Sax",
    "Baritone Sax",
    "Oboe",
    "English Horn",
    "Bassoon",
    "Clarinet",
    "Piccolo",
    "Flute",
    "Recorder",
    "Pan Flute",
    "Blown Bottle",
    "Shakuhachi",
    "Whistle",
    "Ocarina",
    "Lead 1 (square)",
    "Lead 2 (sawtooth)",
    "Lead 3 (calliope)",
    "Lead 4 (chiff)",
    "Lead 5 (charang)",
    "Lead 6 (voice)",
    "Lead 7 (fifths)",
    "Lead 8 (bass + lead)",
    "Pad 1 (new age)",
    "Pad 2 (warm)",
    "Pad 3 (polysynth)",
    "Pad 4 (choir)",
    "Pad 5 (bowed)",
    "Pad 6 (metallic)",
    "Pad 7 (halo)",
    "Pad 8 (sweep)",
    "FX 1 (rain)",
    "FX 2 (soundtrack)",
    "FX 3 (crystal)",
    "FX 4 (atmosphere)",
    "FX 5 (brightness)",
    "FX 6 (goblins)",
    "FX 7 (echoes)",
    "FX 8 (sci-fi)",
    "Sitar",
    "Banjo",
    "Shamisen",
    "Koto",
    "Kalimba",
    "Bagpipe",
    "Fiddle",
    "Shanai",
    "Tinkle Bell",
    "Agogo",
    "Steel Drums",
    "Woodblock",
    "Taiko Drum",
    "Melodic Tom",
    "Synth Drum",
    "Reverse Cymbal",
    "Guitar Fret Noise",
    "Breath Noise",
    "Seashore",
    "Bird Tweet",
    "Telephone Ring",
    "Helicopter",
    "Applause",
    "Gunshot",
];

/// The eight-program family of a program, in plain words for captions.
pub fn family(program: u8) -> &'static str {
    match program / 8 {
        0 => "piano",
        1 => "chromatic percussion",
        2 => "organ",
        3 => "guitar",
        4 => "bass",
        5 => "strings",
        6 => "ensemble",
        7 => "brass",
        8 => "reed",
        9 => "pipe",
        10 => "synth lead",
        11 => "synth pad",
        12 => "synth effects",
        13 => "ethnic",
        14 => "percussive",
        _ => "sound effects",
    }
}

/// The program's name (`program` is 0–127).
pub fn name(program: u8) -> &'static str {
    PROGRAM_NAMES[(program & 0x7f) as usize]
}

/// The pitches an instrument family plays, by family (program / 8): its
/// members' ranges together, for programs [`range`] does not list.
pub const FAMILY_RANGES: [(u8, u8); 16] = [
    (21, 108), // piano
    (48, 96),  // chromatic percussion
    (24, 96),  // organ
    (40, 88),  // guitar
    (28, 67),  // bass
    (28, 103), // strings
    (28, 96),  // ensemble
    (34, 84),  // brass
    (34, 93),  // reed
    (60, 108), // pipe
    (36, 96),  // synth lead
    (36, 96),  // synth pad
    (36, 96),  // synth effects
    (36, 84),  // ethnic
    (36, 84),  // percussive
    (36, 96),  // sound effects
];

/// Written ranges of single instruments, where their family's range would
/// let in notes the instrument cannot play (a violin is not a double bass).
const PROGRAM_RANGES: &[(u8, (u8, u8))] = &[
    (24, (40, 84)),  // nylon guitar
    (25, (40, 84)),  // steel guitar
    (40, (55, 103)), // violin
    (41, (48, 91)),  // viola
    (42, (36, 76)),  // cello
    (43, (28, 67)),  // contrabass
    (56, (54, 84)),  // trumpet
    (57, (40, 77)),  // trombone
    (60, (34, 77)),  // French horn
    (68, (58, 91)),  // oboe
    (70, (34, 75)),  // bassoon
    (71, (50, 94)),  // clarinet
    (72, (74, 108)), // piccolo
    (73, (60, 96)),  // flute
];

/// The pitches `program` plays (0–127): its own written range where
/// [`PROGRAM_RANGES`] has one, else its family's.
pub fn range(program: u8) -> (u8, u8) {
    PROGRAM_RANGES
        .iter()
        .find(|(p, _)| *p == program)
        .map_or(FAMILY_RANGES[usize::from((program & 0x7f) / 8)], |(_, r)| *r)
}

/// The MIDI channel (0-based) that General MIDI reserves for drums.
pub const DRUM_CHANNEL: u8 = 9;
