#!/usr/bin/env bash
# MovieLens-100K (issue 12, acceptance 2): preprocess u.data with one command, train SASRec, BERT4Rec
# and GRU4Rec on it, evaluate each best-validation checkpoint on the test split (full ranking, seen
# items filtered out) and the popularity baseline; ends with one SUMMARY line per model.
# The figures in docs/benchmarks.md ("BERT4Rec, GRU4Rec and SASRec on MovieLens-100K") come from
# this script, run as
#   nice -n 19 bash scripts/bench_ml100k.sh ../shared/data/movielens-100k/u.data /tmp/ml100k
# with seqrec on PATH (e.g. PATH=$PWD/.venv/bin:$PATH). Everything lands in the work folder
# (default: a new temporary one); logs in <work>/logs/.
set -euo pipefail
U_DATA="$(realpath "${1:-../shared/data/movielens-100k/u.data}")"
WORK="${2:-$(mktemp -d "${TMPDIR:-/tmp}/seqrec-ml100k.XXXXXX")}"
EPOCHS="${EPOCHS:-6}"  # per model; a few minutes each on 2 CPU cores
command -v seqrec >/dev/null || { echo "seqrec is not on PATH" >&2; exit 2; }
mkdir -p "$WORK/logs" && cd "$WORK"
echo "work folder: $WORK"

run() {  # run LOG CMD...: the command's output to logs/LOG.log, its wall time on the console
  local log="logs/$1.log"; shift
  local start=$SECONDS
  "$@" >"$log" 2>&1 || { echo "FAILED: $* (see $WORK/$log)"; tail -5 "$log"; exit 1; }
  echo "$(printf '%4d' $((SECONDS - start))) s  $*"
}

# one command: u.data (user<TAB>item<TAB>rating<TAB>timestamp) -> leave-one-out, the ML-1M rules
run preprocess seqrec preprocess ml-100k --input "$U_DATA"
run popularity seqrec evaluate --baseline popularity --test-dir data/ml-100k --filter-seen

# the three models, $EPOCHS epochs each, the best epoch picked on the validation split under the test
# protocol (full ranking, seen items filtered out); the transformers see windows of the last 50 items
# (users have 105 on average). SASRec: next-item softmax at every position, batches of 64.
run sasrec seqrec train sasrec --train-dir data/ml-100k --model-dir runs/sasrec --epochs "$EPOCHS" \
    --max-len 50 --batch-size 64 --lr 0.002 --valid-filter-seen
run sasrec-eval seqrec evaluate --model-dir runs/sasrec --filter-seen
# BERT4Rec learns from fewer targets per window (the masked ones): smaller batches, more steps
run bert4rec seqrec train bert4rec --train-dir data/ml-100k --model-dir runs/bert4rec --epochs "$EPOCHS" \
    --max-len 50 --batch-size 16 --warmup-steps 100 --objective cloze-last --dropout 0.2 --attention-dropout 0 \
    --label-smoothing 0.1 --valid-filter-seen
run bert4rec-eval seqrec evaluate --model-dir runs/bert4rec --filter-seen
# GRU4Rec: softmax over all 1,349 items; 128 users in parallel (the RSC15 default of 32 means 3,015 steps an epoch)
run gru4rec seqrec train gru4rec --train-dir data/ml-100k --model-dir runs/gru4rec --epochs "$EPOCHS" \
    --loss ce --batch-size 128 --valid-filter-seen
run gru4rec-eval seqrec evaluate --model-dir runs/gru4rec --filter-seen

# one line per model: test full+filter-seen HR@10 / NDCG@10 of the best validation epoch, training time
python3 - <<'PY'
import glob, json
def line(name, report, extra=""):
    m = report["metrics"]
    print(f"SUMMARY {name}: {report['protocol']} HR@10 {m['hr@10']:.4f} NDCG@10 {m['ndcg@10']:.4f}{extra}")
line("popularity", json.load(open("data/ml-100k/baseline_popularity_test_full+filter-seen.json")))
for name in ("sasrec", "bert4rec", "gru4rec"):
    run = json.load(open(f"runs/{name}/run.json"))
    epochs = [json.loads(l) for l in open(f"runs/{name}/metrics.jsonl") if '"event": "epoch"' in l]
    best = run["best"]["epoch"]
    report = json.load(open(f"runs/{name}/epoch_{best}/eval_test_full+filter-seen.json"))
    train_s = sum(e["seconds"] for e in epochs)
    valid_s = sum(e.get("valid_seconds") or 0 for e in epochs)
    line(name, report, f" (best validation epoch {best} of {len(epochs)}; training {train_s:.0f} s, validation {valid_s:.0f} s)")
PY
