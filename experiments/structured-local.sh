#!/usr/bin/env bash
# The campaigns of experiments/structured-local.md, in order, each resumed until it
# finishes (safe to re-run after a kill or a reboot: every step resumes where it stopped).
#   bash experiments/structured-local.sh            # from the repository root
# 1. the seeds alone on the 30 validation tasks (stopped when its final test starts);
# 2. optuna, from a copy of the seeds' response cache, so its seed evaluations replay for
#    free and budget.max_search_calls buys search calls only; its final test evaluates its
#    pick, its best generated agent, the best seed and search.test_seeds on the 100 test tasks;
# 3. the seeds campaign finished from a copy of optuna's cache: its test replays for free
#    (the same replies, so both campaigns report the same seed test scores);
# 4. transfer: the optuna pick, unchanged, against Chain-of-Thought on the real GSM8K file,
#    paired (`metasearch eval --baseline`; skipped when ../shared/data is absent);
# 5. random and 6. adas, like optuna (adas's 1.5B meta agent is shown run_python in the
#    runtime API: does it find program-of-thought by itself?).
# The order puts the headline comparison (optuna against the seeds) first: on 2 cores the
# 0.5B makes about 0.3 calls a second, so the whole protocol takes days, not hours.
#   bash experiments/structured-local.sh save       # commit-able replies (see below)
# runs/ does not survive a lost machine: `save` writes what each campaign's cache holds that
# experiments/structured-local.replies/ has not yet, and the driver imports those files first,
# so on a fresh machine it replays everything saved and goes on (experiments/replies.sh).
set -u
cd "$(dirname "$0")/.."
MS=${METASEARCH:-.venv/bin/metasearch}
CFG=experiments/structured-local.toml
LOG=${LOG:-runs/structured-local.log}
REPLIES=experiments/structured-local.replies  # committed: see experiments/replies.sh
mkdir -p runs

. experiments/replies.sh
if [ "${1:-}" = save ]; then replies_save "$REPLIES" runs/structured-*/; exit; fi
replies_load runs "$REPLIES" structured-seeds structured-optuna structured-random structured-adas \
  >> "$LOG" 2>&1 || exit 1
replies_autosave "$REPLIES" "runs/structured-*/" >> "$LOG" 2>&1

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

seeded() {  # seeded OUT: a new campaign directory holding a copy of the seeds' own cache
  local out=$1 src=runs/structured-seeds/cache  # (not optuna's, swapped in for the seeds' test)
  [ -d runs/structured-seeds/cache.before-test ] && src=runs/structured-seeds/cache.before-test
  if [ ! -d "$out" ]; then mkdir -p "$out" && cp -r "$src" "$out/cache"; fi
}

until_test() {  # until_test OUT ARGS...: run OUT's search, stop it when its final test starts
  local out=$1; shift
  if [ -s "$out/.searched" ] || [ -s "$out/.done" ]; then return 0; fi
  local mark; mark=$(wc -l < "$LOG" 2>/dev/null || echo 0)
  "$MS" run "$CFG" --out "$out" --resume "$@" >> "$LOG" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if tail -n +"$((mark + 1))" "$LOG" | grep -q "» test split"; then
      kill -TERM "$pid"; wait "$pid"; date > "$out/.searched"; return 0
    fi
    sleep 10
  done
  wait "$pid" && { date > "$out/.searched"; date > "$out/.done"; }
}

transfer() {  # the optuna pick, unchanged, against CoT on GSM8K (protocol: the write-up)
  local out=runs/structured-transfer data=../shared/data/gsm8k_test.jsonl pick
  if [ -s "$out/transfer.json" ]; then return 0; fi
  if [ ! -f "$data" ]; then echo "$(date -Is) no $data: transfer skipped" >> "$LOG"; return 0; fi
  pick=$("$MS" archive show runs/structured-optuna --best --json |
         python3 -c 'import json, sys; print(json.load(sys.stdin)["code_path"])') || return 1
  mkdir -p "$out"
  echo "$(date -Is) transfer: $pick against archive/chain_of_thought.py on $data" >> "$LOG"
  "$MS" eval "runs/structured-optuna/$pick" --baseline archive/chain_of_thought.py \
      --suite gsm8k --data "$data" --split test --limit 100 --max-tokens 256 \
      --task-timeout 1800 --cache-dir "$out/cache" --json > "$out/transfer.json.part" 2>> "$LOG" \
    && mv "$out/transfer.json.part" "$out/transfer.json"
}

for _ in 1 2 3 4 5; do until_test runs/structured-seeds --generations 0 && break; sleep 5; done
[ -s runs/structured-seeds/.searched ] || exit 1
seeded runs/structured-optuna
campaign runs/structured-optuna || exit 1
if [ ! -s runs/structured-seeds/.done ] && [ ! -e runs/structured-seeds/cache.before-test ]; then
  mv runs/structured-seeds/cache runs/structured-seeds/cache.before-test
  cp -r runs/structured-optuna/cache runs/structured-seeds/cache
fi
campaign runs/structured-seeds --generations 0 || exit 1
for _ in 1 2 3; do transfer && break; sleep 5; done
seeded runs/structured-random
campaign runs/structured-random --set search.strategy=random || exit 1
seeded runs/structured-adas
campaign runs/structured-adas --set search.strategy=adas || exit 1
echo "$(date -Is) all campaigns finished" >> "$LOG"
