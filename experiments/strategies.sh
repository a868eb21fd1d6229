#!/usr/bin/env bash
# The search-efficiency comparison of experiments/strategies.md: benchmarks/search_efficiency.py
# on the local models, run until it finishes (safe to re-run after a kill or a reboot: finished
# campaigns are read back, an interrupted one resumes from its archive and response cache).
#   bash experiments/strategies.sh              # from the repository root; hours on 2 cores
#   SEEDS=0,1 bash experiments/strategies.sh    # fewer search seeds (the protocol says 0,1,2)
#   bash experiments/strategies.sh save         # the caches as replies files, to commit: a
#                                               # fresh machine replays them, then goes on
# Order: the seeds campaign (runs/strategies/seeds), then search seed 0 of every strategy,
# then seed 1, then seed 2, so a run cut short still compares every strategy.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/strategies}
SEEDS=${SEEDS:-0,1,2}
STRATEGIES=${STRATEGIES:-random,adas,optuna,mcts,evolve,hybrid}
LOG=${LOG:-$OUT.log}
MS=${METASEARCH:-.venv/bin/metasearch}
REPLIES=experiments/strategies.replies  # committed replies files: see experiments/replies.sh
mkdir -p "$OUT"
. experiments/replies.sh
if [ "${1:-}" = save ]; then replies_save "$REPLIES" "$OUT"/*/; exit; fi
runs=()  # every strategy's run starts from a copy of the seeds campaign's cache
for s in ${STRATEGIES//,/ }; do for n in ${SEEDS//,/ }; do runs+=("$s-s$n"); done; done
replies_load "$OUT" "$REPLIES" seeds "${runs[@]}" >> "$LOG" 2>&1 || exit 1
replies_autosave "$REPLIES" "$OUT/*/" >> "$LOG" 2>&1

if [ -s "$OUT/.done" ]; then echo "$OUT is finished ($(cat "$OUT/.done")); see $OUT/search_efficiency.json"; exit 0; fi
for try in 1 2 3 4 5; do
  echo "$(date -Is) try $try: search_efficiency --seeds $SEEDS --strategies $STRATEGIES" >> "$LOG"
  nice -n 10 "$PY" benchmarks/search_efficiency.py --model local \
      --config experiments/strategies.toml --out "$OUT" --seeds "$SEEDS" \
      --strategies "$STRATEGIES" >> "$LOG" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then date -Is > "$OUT/.done"; echo "$(date -Is) finished" >> "$LOG"; exit 0; fi
  if [ "$rc" -eq 2 ]; then echo "$(date -Is) bad arguments or config (exit 2); see $LOG" >> "$LOG"; exit 2; fi
  echo "$(date -Is) exited $rc (a campaign failed or the run was killed); resuming" >> "$LOG"
  sleep 5
done
exit 1
