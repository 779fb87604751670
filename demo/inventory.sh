#!/bin/sh
# Lists every MIDI file with its size and its header fields (format, tracks,
# ticks per quarter note), read from the first 14 bytes of the file.
set -eu
corpus=$1
out=$2
mkdir -p "$(dirname "$out")"
tmp="$out.partial"
printf 'path\tartist\tbytes\tformat\ttracks\tdivision\n' > "$tmp"
find "$corpus" -type f \( -iname '*.mid' -o -iname '*.midi' \) | LC_ALL=C sort | while IFS= read -r f; do
    rel=${f#"$corpus"/}
    artist=$(basename "$(dirname "$f")")
    bytes=$(wc -c < "$f")
    header=$(od -An -tu1 -j8 -N6 "$f" | tr -s ' ' | sed 's/^ //')
    printf '%s\t%s\t%s\t%s\n' "$rel" "$artist" "$bytes" "$header" |
        awk -F'\t' 'BEGIN { OFS = "\t" } { split($4, b, " "); print $1, $2, $3, b[1] * 256 + b[2], b[3] * 256 + b[4], b[5] * 256 + b[6] }' >> "$tmp"
done
mv "$tmp" "$out"
