#!/usr/bin/env bash
# The three campaigns of experiments/structured-local.md, in order, each resumed until it
# finishes (safe to re-run after a kill or a reboot: every step resumes where it stopped).
#   bash experiments/structured-local.sh            # from the repository root
# 1. the seeds alone (8 seeds on 30 validation and 100 test tasks);
# 2. optuna and 3. random, each starting from a copy of the seeds' response cache, so their
#    seed evaluations replay for free and budget.max_search_calls buys the same search calls;
# 4. adas with the same budget (its 1.5B meta agent is shown run_python in the runtime API:
#    does it find program-of-thought by itself?).
set -u
cd "$(dirname "$0")/.."
MS=${METASEARCH:-.venv/bin/metasearch}
CFG=experiments/structured-local.toml
LOG=${LOG:-runs/structured-local.log}
mkdir -p runs

campaign() {  # campaign OUT ARGS...: run or resume OUT until it exits 0 (at most 5 tries)
  local out=$1; shift
  for _ in 1 2 3 4 5; do
    if [ -s "$out/report.md" ] && [ -s "$out/.done" ]; then return 0; fi
    "$MS" run "$CFG" --out "$out" --resume "$@" >> "$LOG" 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then date > "$out/.done"; return 0; fi
    echo "$(date -Is) $out exited $rc; resuming" >> "$LOG"
    sleep 5
  done
  return 1
}

seeded() {  # seeded OUT: a new campaign directory holding a copy of the seeds' cache
  local out=$1
  if [ ! -d "$out" ]; then mkdir -p "$out" && cp -r runs/structured-seeds/cache "$out/cache"; fi
}

campaign runs/structured-seeds --generations 0 || exit 1
seeded runs/structured-optuna
campaign runs/structured-optuna || exit 1
seeded runs/structured-random
campaign runs/structured-random --set search.strategy=random || exit 1
seeded runs/structured-adas
campaign runs/structured-adas --set search.strategy=adas || exit 1
echo "$(date -Is) all four campaigns finished" >> "$LOG"
