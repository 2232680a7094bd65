#!/bin/bash
# Crawl + chunking benchmark: `syncplan chunk` against fpart on the same
# warm tree, in the same run.  Not a test: run by hand, on a quiet machine.
#
#   bash bench/crawl.sh [BUILD_DIR] [FILES]
#
# Appends a dated section to bench/RESULTS.md: wall time, entries/s and
# peak RSS for count mode (fpart -n 8 vs syncplan chunk -n 8) and streamed
# mode (fpart -L -f 2000 vs syncplan chunk -f 2000), as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
files=${2:-50000}
for t in fpart hyperfine /usr/bin/time jq; do
  command -v "$t" >/dev/null || { echo "bench needs $t (apt-get install ${t##*/})" >&2; exit 1; }
done
syncplan="$build/cli/syncplan"
mktree="$build/tests/mktree"
[ -x "$syncplan" ] && [ -x "$mktree" ] || { echo "build first: sh .ci/setup demo" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/syncplan-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
"$mktree" sample "$tree" -n "$files"
sync
entries=$(find "$tree" -mindepth 1 | wc -l)
# Warm the cache: both tools read the same metadata.
fpart -n 8 "$tree" >/dev/null
"$syncplan" chunk -n 8 "$tree" >/dev/null

hyperfine -N -w 5 -r 30 --export-json "$work/count.json" \
  -n fpart "fpart -n 8 $tree" -n syncplan "$syncplan chunk -n 8 $tree" >&2
hyperfine -N -w 5 -r 30 --export-json "$work/live.json" \
  -n fpart "fpart -L -f 2000 $tree" -n syncplan "$syncplan chunk -f 2000 $tree" >&2

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
rss() { # median peak RSS in KiB over 9 runs
  for _ in 1 2 3 4 5 6 7 8 9; do
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1
  done | median
}
mean_ms() { jq -r ".results[] | select(.command == \"$2\") | .mean * 1000" "$1"; }

fc=$(mean_ms "$work/count.json" fpart) sc=$(mean_ms "$work/count.json" syncplan)
fl=$(mean_ms "$work/live.json" fpart) sl=$(mean_ms "$work/live.json" syncplan)
rfc=$(rss fpart -n 8 "$tree") rsc=$(rss "$syncplan" chunk -n 8 "$tree")
rfl=$(rss fpart -L -f 2000 "$tree") rsl=$(rss "$syncplan" chunk -f 2000 "$tree")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
fs=$(df -PT "$work" | awk 'NR == 2 { print $2 }')
{
  echo
  echo "## Crawl + chunking, $(date -u +%Y-%m-%d) ($files-file tree)"
  echo
  echo "Machine: $(nproc) cores ($cpu), $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -sr), tree on $fs, warm cache."
  echo "fpart $(fpart -V 2>&1 | head -1 | awk '{ print $2 }'), syncplan $("$syncplan" --version | awk '{ print $2 }') (default threads)."
  echo "Command: \`bash bench/crawl.sh $build $files\` ($entries entries; hyperfine 30 runs, RSS median of 9)."
  echo
  echo "| mode | tool | wall (ms) | entries/s | peak RSS (KiB) |"
  echo "|---|---|---:|---:|---:|"
  awk -v e="$entries" -v a="$fc" -v b="$sc" -v ra="$rfc" -v rb="$rsc" -v fa="$fl" -v fb="$sl" -v la="$rfl" -v lb="$rsl" 'BEGIN {
    printf "| count (-n 8) | fpart -n 8 | %.1f | %.0f | %d |\n", a, e / a * 1000, ra
    printf "| count (-n 8) | syncplan chunk -n 8 | %.1f | %.0f | %d |\n", b, e / b * 1000, rb
    printf "| streamed (2000 files) | fpart -L -f 2000 | %.1f | %.0f | %d |\n", fa, e / fa * 1000, la
    printf "| streamed (2000 files) | syncplan chunk -f 2000 | %.1f | %.0f | %d |\n", fb, e / fb * 1000, lb
    printf "\nRatios (syncplan vs fpart): count mode **%.2fx** entries/s, RSS %.2fx; streamed mode **%.2fx** entries/s, RSS %.2fx.\n", a / b, rb / ra, fa / fb, lb / la
  }'
} | tee -a bench/RESULTS.md
