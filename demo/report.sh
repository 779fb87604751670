#!/bin/sh
# A Markdown report and a metrics file from the inventory.
set -eu
top=${AMT_PARAM_REPORT_TOP:-8}
files=$(awk 'NR > 1' artifacts/inventory.tsv | wc -l)
bytes=$(awk -F'\t' 'NR > 1 { s += $3 } END { print s + 0 }' artifacts/inventory.tsv)
artists=$(wc -l < artifacts/by_artist.tsv)
unique=$(cut -d' ' -f1 artifacts/checksums.txt | LC_ALL=C sort -u | wc -l)
{
    echo "# Corpus inventory"
    echo
    echo "$files MIDI files, $bytes bytes, $artists artist folders, $unique distinct contents."
    echo
    echo "| artist | files | bytes |"
    echo "|---|---:|---:|"
    head -n "$top" artifacts/by_artist.tsv | awk -F'\t' '{ printf "| %s | %d | %d |\n", $1, $2, $3 }'
} > artifacts/report.md
printf '{"artists": %d, "bytes": %d, "distinct_contents": %d, "files": %d}\n' "$artists" "$bytes" "$unique" "$files" > artifacts/metrics.json
