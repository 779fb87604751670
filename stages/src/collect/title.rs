//! Artist and title from a Lakh-style `Artist/Title.mid` path.

/// The title from a file name: the extension goes, a trailing Lakh duplicate
/// suffix such as `.1` goes, `_` and `.` become spaces, and runs of spaces
/// collapse. Numbers stay: a whole-number title ("1999"), one after a space
/// ("No. 3") and a dotted one ("BWV 1.6").
pub fn clean_title(file_name: &str) -> String {
    let stem = match file_name.rfind('.') {
        Some(i)
            if file_name[i + 1..].eq_ignore_ascii_case("mid")
                || file_name[i + 1..].eq_ignore_ascii_case("midi") =>
        {
            &file_name[..i]
        }
        _ => file_name,
    };
    let stem = strip_duplicate_suffix(stem);
    let chars: Vec<char> = stem.chars().collect();
    let spaced: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            // A dot between digits is a number ("BWV 1.6", "Op. 2.3"), not a separator.
            let in_number = c == '.'
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
            if c == '_' || (c == '.' && !in_number) {
                ' '
            } else {
                c
            }
        })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Song.1` → `Song`; `1999`, `No. 3` and `1.2` (digits on both sides) are kept.
fn strip_duplicate_suffix(stem: &str) -> &str {
    let Some(dot) = stem.rfind('.') else {
        return stem;
    };
    let (head, digits) = (&stem[..dot], &stem[dot + 1..]);
    let is_suffix = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && head
            .chars()
            .last()
            .is_some_and(|c| !c.is_whitespace() && !c.is_ascii_digit());
    if is_suffix { head } else { stem }
}

/// The artist: the name of the folder holding the file, if it is not the corpus root.
pub fn artist(relative_path: &str) -> Option<String> {
    let mut parts = relative_path.rsplit('/');
    parts.next()?;
    parts.next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_cleaned_like_lakh() {
        assert_eq!(clean_title("Hey_Jude.mid"), "Hey Jude");
        assert_eq!(clean_title("Hey Jude.1.mid"), "Hey Jude");
        assert_eq!(clean_title("Hey Jude.12.MID"), "Hey Jude");
        assert_eq!(clean_title("1999.mid"), "1999");
        assert_eq!(clean_title("Symphony No. 5.mid"), "Symphony No 5");
        assert_eq!(clean_title("Op. 59 No. 3.midi"), "Op 59 No 3");
        assert_eq!(clean_title("Take.5.mid"), "Take");
        assert_eq!(clean_title("Track 1.2.mid"), "Track 1.2");
        assert_eq!(clean_title("Chorale BWV 1.6.mid"), "Chorale BWV 1.6");
        assert_eq!(clean_title("Mr._Brightside.mid"), "Mr Brightside");
    }

    #[test]
    fn artist_is_the_parent_folder() {
        assert_eq!(
            artist("folk/Traditional (Ireland)/Tune.mid").as_deref(),
            Some("Traditional (Ireland)")
        );
        assert_eq!(artist("Tune.mid"), None);
    }
}
