#!/bin/sh
# Files and bytes per artist folder, largest first.
set -eu
awk -F'\t' 'NR > 1 { n[$2]++; b[$2] += $3 } END { for (a in n) printf "%s\t%d\t%d\n", a, n[a], b[a] }' "$1" |
    LC_ALL=C sort -t "$(printf '\t')" -k2,2nr -k1,1 > "$2"
