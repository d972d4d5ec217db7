#!/usr/bin/env bash
# Coverage-guided fuzzing of herald with cargo-fuzz (libFuzzer), one target at a time.
#
#   tools/fuzz.sh [--seconds N | --runs N] [--ci] [--asan] [--merge] [TARGET...]
#
# Targets (fuzz/fuzz_targets/; what each checks is at the top of fuzz/src/TARGET.rs):
#   frame         frame decoding, re-encoding, decode_header, the client state machine
#   daemon        scripts of frames through the whole daemon core in one process
#   region        opening and scanning region images (fixtures/, crash images)
#   dead_letters  regions whose dead-letter area is damaged, opened and changed
#   spec          stored subscription specs: decode, re-encode, matching
# With no TARGET, all of them, in that order.
#
#   --seconds N   run each target for N seconds (default 60)
#   --runs N      run each target for N executions instead
#   --ci          each target for 15 s (75 s of fuzzing, plus the build); what
#                 CI runs
#   --asan        build with AddressSanitizer (three to ten times slower)
#   --merge       afterwards, minimise the committed corpus fuzz/corpus/TARGET with
#                 what the run found (libFuzzer -merge=1), for committing; not for
#                 region, whose inputs are whole 64 KiB images (its committed corpus is
#                 the generated seeds, with fixtures/ beside it)
#
# Each target reads the committed corpus fuzz/corpus/TARGET (region also fixtures/)
# and writes what it finds to fuzz/corpus-bulk/TARGET (not committed); a crash is
# written to fuzz/artifacts/TARGET/ and fails the script. Prints, per target,
# libFuzzer's final stats: executions, exec/s and coverage (cov: edges, ft: features).
#
# Built without a sanitizer by default: what the targets run is safe Rust over byte
# slices, except the simulated reactor's copies into armed buffers (src/reactor/sim.rs),
# and ASan costs a factor of three (the region targets) to ten (the daemon, whose
# buffers are megabytes per script). Debug assertions and overflow checks are on.
# Everything runs under `nice -n 19`: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(frame daemon region dead_letters spec)
seconds=60
runs=""
ci=false
merge=false
asan=false
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --ci) ci=true; seconds=15; shift ;;
    --merge) merge=true; shift ;;
    --asan) asan=true; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "tools/fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if [[ ! " ${all_targets[*]} " == *" $t "* ]]; then
    echo "tools/fuzz.sh: no target '$t'; targets: ${all_targets[*]}" >&2
    exit 2
  fi
done

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "tools/fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "tools/fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
  exit 1
fi

sanitizer() {
  if $asan; then echo address; else echo none; fi
}

cd fuzz
failed=()
summary=()
for t in "${targets[@]}"; do
  san=$(sanitizer)
  target_dir="target/$san"
  mkdir -p "corpus-bulk/$t" "artifacts/$t"
  corpora=("corpus-bulk/$t" "corpus/$t")
  [ "$t" = region ] && corpora+=("../fixtures")
  if [ -n "$runs" ]; then
    limit=(-runs="$runs"); what="$runs runs"
  else
    limit=(-max_total_time="$seconds"); what="$seconds s"
  fi
  log="artifacts/$t/last-run.log"
  echo "== fuzz $t (sanitizer $san; $what)"
  status=0
  nice -n 19 cargo +nightly fuzz run --sanitizer "$san" --debug-assertions \
    --target-dir "$target_dir" "$t" "${corpora[@]}" -- \
    "${limit[@]}" -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
    -timeout=60 -rss_limit_mb=4096 >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    echo "!! fuzz $t failed (exit $status); the log is fuzz/$log:" >&2
    grep -E 'panicked at|^ERROR|SUMMARY|Test unit written to|^artifact_prefix' -A 2 "$log" | head -20 >&2 || true
    failed+=("$t")
    summary+=("$t: FAILED")
    continue
  fi
  summary+=("$t: ${done_line:-no final stats}")
  if $merge && [ "$t" != region ]; then
    echo "== merge the run into fuzz/corpus/$t"
    mkdir -p "corpus-merged/$t"
    nice -n 19 cargo +nightly fuzz run --sanitizer "$san" --debug-assertions \
      --target-dir "$target_dir" "$t" "corpus-merged/$t" "corpus/$t" "corpus-bulk/$t" -- \
      -merge=1 >"artifacts/$t/merge.log" 2>&1
    rm -rf "corpus/$t" && mv "corpus-merged/$t" "corpus/$t"
    echo "   $(find "corpus/$t" -type f | wc -l) files, $(du -sk "corpus/$t" | cut -f1) KiB"
  fi
done

echo "== summary"
printf '   %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "tools/fuzz.sh: ${failed[*]} crashed or broke an invariant; see fuzz/artifacts/" >&2
  exit 1
fi
