# Repetition stress: every mode, several thread counts, many runs, each
# under a timeout, so a lost wake-up or a race in the crawl shows up as a
# failure instead of a rare hang.  COUNT and TOPLEVEL output must also be
# identical from run to run (deterministic chunks whatever the crawl order).
. "$TESTS_DIR/lib.sh"
need timeout cmp sort

"$MKTREE" sample "$work/src" -n 3000 --per-dir 20
# Many hard-link pairs of equal size: their order must not depend on which
# name the racing crawl delivers first.
mkdir "$work/src/hl-a" "$work/src/hl-b"
for i in $(seq 1 60); do
  printf '%01000d' "$i" >"$work/src/hl-a/f$i"
  ln "$work/src/hl-a/f$i" "$work/src/hl-b/g$i"
done
runs=${REPEAT_RUNS:-40}
for mode in "-n 5" "-t" "-f 97" "-s 64k"; do
  for j in 1 2 3 8; do
    ref=
    for ((i = 0; i < runs; i++)); do
      out="$work/out.$i"
      timeout 20 "$SYNCPLAN" chunk $mode -j "$j" -0 "$work/src" >"$out" ||
        fail "chunk $mode -j $j run $i failed or hung (status $?)"
      case "$mode" in
      -n* | -t)
        if [ -z "$ref" ]; then ref="$work/ref"; mv "$out" "$ref"; continue; fi
        cmp -s "$ref" "$out" || fail "chunk $mode -j $j: run $i differs from run 0"
        ;;
      *) # streamed: chunking follows crawl order; the entry set must match
        tr '\0' '\n' <"$out" | cut -f3 | sort >"$out.paths"
        if [ -z "$ref" ]; then ref="$work/ref"; mv "$out.paths" "$ref"; continue; fi
        cmp -s "$ref" "$out.paths" || fail "chunk $mode -j $j: run $i lists other entries"
        ;;
      esac
      rm -f "$out" "$out.paths"
    done
    rm -f "$work/ref"
  done
done
echo "chunk_repeat: ok ($runs runs x 4 modes x 4 thread counts)"
