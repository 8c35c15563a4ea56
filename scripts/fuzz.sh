#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input (fuzz/fuzz_targets/, checks in crates/fuzzcheck), one
# target at a time, each for SECONDS_PER_TARGET (default 60). Not run by scripts/test.sh: it
# needs nightly and cargo-fuzz, and its value grows with the time given. The committed corpus
# (fuzz/corpus/<target>/) is replayed by the normal suite (`cargo test -p coredump-fuzzcheck`).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# New inputs go to fuzz/work/<target>/ during a run; afterwards fuzz/corpus/<target>/ is
# rewritten as its hand-named seeds plus a minimal set covering the same edges (-merge=1). A crash is written to
# fuzz/artifacts/<target>/; after fixing it, copy the input to fuzz/regressions/<target>/ so the
# suite keeps replaying it. The exit status is 1 when any target found something.
#
# FUZZ_SANITIZER (default `none`): the crates fuzzed forbid unsafe code, so AddressSanitizer
# would find little and halve the executions; `address` turns it on. Debug assertions (integer
# overflow checks) are always on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
[ $# -gt 0 ] && shift
sanitizer="${FUZZ_SANITIZER:-none}"
export CARGO_INCREMENTAL=0

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Largest input per target: cores need room for headers and notes, the rest are short texts.
max_len() {
  case "$1" in
    corefile) echo 32768 ;;
    *) echo 4096 ;;
  esac
}

echo "== building the targets (sanitizer: $sanitizer)"
cargo +nightly fuzz build -s "$sanitizer" --debug-assertions

mkdir -p work
summary=work/summary.txt
: >"$summary"
found=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  rm -rf "work/$t"
  mkdir -p "work/$t"
  log="work/$t.log"
  before=$(find "artifacts/$t" -type f | wc -l)
  echo "== $t: ${secs}s"
  start=$(date +%s)
  set +e
  cargo +nightly fuzz run -s "$sanitizer" --debug-assertions "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  ran=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  after=$(find "artifacts/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]; then
    result="nothing found"
  else
    found=1
    artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
    result="FOUND (exit $rc) ${artifact:-see $log}"
  fi
  # Keep the corpus small enough to commit: the seeds (named by hand), plus the fewest inputs
  # (named by their SHA-1) that cover every edge the old corpus and this run's inputs reach.
  # Hit counts are not kept (-use_counters=0): they would multiply the files for little gain.
  if [ -n "$(find "work/$t" -type f -print -quit)" ]; then
    min="work/$t.min"
    rm -rf "$min"
    mkdir -p "$min"
    if cargo +nightly fuzz run -s "$sanitizer" --debug-assertions "$t" -- \
      -merge=1 -use_counters=0 -max_len="$(max_len "$t")" "$min" "corpus/$t" "work/$t" \
      >"work/$t.merge.log" 2>&1; then
      find "corpus/$t" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
      seeds=$(find "corpus/$t" -type f -exec sha1sum {} + | cut -d' ' -f1)
      for f in "$min"/*; do
        grep -qx "$(basename "$f")" <<<"$seeds" || cp "$f" "corpus/$t/"
      done
    else
      echo "   merge failed, see fuzz/work/$t.merge.log"
    fi
  fi
  kept="$(find "corpus/$t" -type f | wc -l) files, $(du -sk --apparent-size "corpus/$t" | cut -f1) KiB"
  line=$(printf '%-11s %5ss %11s execs  corpus %-24s %s' "$t" "$ran" "${execs:-?}" "$kept" "$result")
  echo "$line" | tee -a "$summary"
done

echo "== summary (fuzz/work/summary.txt)"
cat "$summary"
echo "corpus: $(du -sh --apparent-size corpus | cut -f1) in fuzz/corpus/"
exit "$found"
