# The issue's acceptance check: `syncplan chunk -n 8 DIR` on a 50,000-file
# tree lists every entry exactly once, with chunk byte totals within 5% of
# each other and no hard-link group split; limit mode respects its bounds.
. "$TESTS_DIR/lib.sh"
need find sort awk

src="$work/src"
"$MKTREE" sample "$src" -n 50000

expect_status 0 "$SYNCPLAN" chunk -n 8 "$src"
mv "$work/out" "$work/parts"
# Sample names are plain, so the text format is safe to parse here.
cut -f3 "$work/parts" | sort >"$work/got"
(cd "$src" && find . -mindepth 1 -printf '%P\n') | sort >"$work/expected"
cmp -s "$work/got" "$work/expected" || fail "entries missing or repeated"
[ "$(wc -l <"$work/got")" -ge 50000 ] || fail "fewer than 50,000 entries"

# Sizes are lstat sizes (0 for directories).
(cd "$src" && find . -mindepth 1 -printf '%P\t%s\t%y\n') |
  awk -F'\t' '{ print $1 "\t" ($3 == "d" ? 0 : $2) }' | sort >"$work/sizes"
awk -F'\t' '{ print $3 "\t" $2 }' "$work/parts" | sort | cmp -s - "$work/sizes" ||
  fail "printed sizes differ from lstat"

# Byte balance, counting each hard-linked inode once.
(cd "$src" && find . -mindepth 1 -printf '%P\t%i\n') | sort >"$work/inodes"
awk -F'\t' '
  FNR == NR { ino[$1] = $2; next }
  { if (seen[ino[$3]]++) next; bytes[$1] += $2; parts[$1] = 1 }
  END {
    n = 0; min = -1; max = 0
    for (p in parts) { n++; b = bytes[p]; if (min < 0 || b < min) min = b; if (b > max) max = b }
    printf "parts=%d min=%d max=%d spread=%.6f%%\n", n, min, max, 100 * (max - min) / max
    if (n != 8 || (max - min) > 0.05 * max) exit 1
  }' "$work/inodes" "$work/parts" || fail "chunks not balanced within 5%"

# Hard-link groups in one chunk.
(cd "$src" && find . -mindepth 1 -links +1 ! -type d -printf '%i\t%P\n') | sort >"$work/links"
[ -s "$work/links" ] || fail "sample tree has no hard links to check"
awk -F'\t' 'FNR == NR { part[$3] = $1; next }
  { if (($1 in first) && first[$1] != part[$2]) bad = 1; first[$1] = part[$2] }
  END { exit bad }' "$work/parts" "$work/links" || fail "a hard-link group was split"

# Limits: at most 1000 entries and 2 MiB per chunk (a single larger file
# excepted), streamed, numbered from 1 without gaps.
expect_status 0 "$SYNCPLAN" chunk -f 1000 -s 2M "$src"
awk -F'\t' '
  FNR == NR { ino[$1] = $2; next }
  { n[$1]++; if (!seen[ino[$3]]++) b[$1] += $2; if ($1 > max) max = $1 }
  END {
    for (p = 1; p <= max; p++) {
      if (!(p in n)) { print "gap at " p; exit 1 }
      if (n[p] > 1000 || (b[p] > 2097152 && n[p] > 1)) { print "part " p " over: " n[p] " " b[p]; exit 1 }
    }
  }' "$work/inodes" "$work/out" || fail "limit mode broke its bounds"
echo "chunk_50k: ok"
