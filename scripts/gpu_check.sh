#!/usr/bin/env bash
# The GPU check: what seqrec does on one CUDA GPU, in <= 8 minutes, printed as one report.
#
#   scripts/gpu_check.sh --prepare [--shared DIR]  # once, here: processed ML-1M and yoochoose 1/64 into .gpu_data/
#   scripts/gpu_check.sh                          # on the GPU machine (reads .gpu_data/, needs torch with CUDA)
#   scripts/gpu_check.sh --cpu-smoke              # the same steps on the bundled sample, CPU, seconds (CI runs it)
#
# It prints python/torch/CUDA versions and the GPU; BERT4Rec on ML-1M with --use-cuda (bf16): seconds
# per epoch, sequences/s, peak GPU memory and the test figures after a fixed number of epochs;
# SASRec likewise; GRU4Rec on yoochoose 1/64: events/s for one epoch; full-ranking evaluation time
# of each; a one-rank torchrun training with the NCCL backend and a two-rank gloo evaluation. The
# data travel with the project in .gpu_data/ (git-ignored; about 20 MB), so the GPU machine needs
# PyTorch and seqrec's pure-Python dependencies but no network. Every figure comes from seqrec's own
# records (metrics.jsonl, evaluate's JSON); the last line is a SUMMARY.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
DATA=.gpu_data
SHARED=../shared/data
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) MODE=smoke ;;
    --prepare) MODE=prepare ;;
    --data) DATA="$2"; shift ;;
    --shared) SHARED="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "Error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-python3}
if command -v seqrec >/dev/null 2>&1; then SEQREC=(seqrec); else SEQREC=("$PY" -m seqrec_cli); export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; fi
export PYTHONUNBUFFERED=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seqrec-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ "$MODE" = prepare ]; then
  mkdir -p "$DATA"
  (cd "$WORK" && "${SEQREC[@]}" download ml-1m --from-file "$OLDPWD/$SHARED/movielens-1m/reconstructed/ml-1m.zip" >/dev/null \
     && "${SEQREC[@]}" preprocess ml-1m --out-dir "$OLDPWD/$DATA/ml-1m" --vocab "$OLDPWD/$DATA/vocab/ml-1m.txt")
  S="$SHARED/rsc15-yoochoose/srgnn_yoochoose1_64/derived_text"
  "${SEQREC[@]}" preprocess text2id --train "$S/train_sessions.txt" --test "$S/test_sessions.txt" \
     --out-dir "$DATA/yoochoose1_64" --vocab "$DATA/vocab/yoochoose1_64.txt" --name yoochoose1_64
  du -sh "$DATA"
  exit 0
fi

if [ "$MODE" = smoke ]; then
  ML="data/sample"; YC="data/sample"; DEV=(); EPOCHS=1
  BERT=(--max-len 20 --hidden-size 16 --intermediate-size 32 --batch-size 64)
  SAS=(--max-len 20 --hidden-size 16 --intermediate-size 16 --batch-size 64)
  GRU=(--hidden-size 16 --n-sample 64 --batch-size 32)
  NCCL=gloo
else
  ML="$DATA/ml-1m"; YC="$DATA/yoochoose1_64"; DEV=(--use-cuda); EPOCHS=5
  [ -f "$ML/manifest.json" ] && [ -f "$YC/manifest.json" ] || { echo "Error: $DATA/ holds no prepared data; run scripts/gpu_check.sh --prepare first" >&2; exit 1; }
  BERT=(--batch-size 256 --lr 2e-3 --precision bf16 --objective cloze-last --dropout 0.2 --attention-dropout 0 --label-smoothing 0.1)
  SAS=(--batch-size 128 --lr 1e-3 --precision bf16)
  GRU=()
  NCCL=nccl
fi

"$PY" - <<'EOF'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      + (f"GPU {torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
         if torch.cuda.is_available() else "no GPU visible"))
EOF

# epoch_report MODEL_DIR: seconds/epoch, targets/s, samples/s and peak GPU memory from metrics.jsonl
epoch_report() {
  "$PY" - "$1" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if '"event": "epoch"' in l]
secs = [r["seconds"] for r in recs]
peaks = [r["peak_gpu_mib"] for r in recs if r.get("peak_gpu_mib") is not None]
peak = f"{max(peaks):,.0f} MiB" if peaks else "n/a (CPU)"
valid = recs[-1].get("valid") or {}
print(f"  {len(recs)} epochs, {sum(secs) / len(secs):.1f} s/epoch (last {secs[-1]:.1f} s), "
      f"{recs[-1]['targets_per_s']:,.0f} targets/s, {recs[-1]['steps'] / secs[-1]:.1f} steps/s, peak GPU {peak}; "
      f"valid " + ", ".join(f"{k} {v:.4f}" for k, v in valid.items() if k in ("hr@10", "ndcg@10", "recall@20", "mrr@20")))
EOF
}
# eval_report JSON: predictions, seconds and the headline figures of seqrec evaluate's output
eval_report() {
  "$PY" - "$1" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
m = b["metrics"]
print(f"  evaluate [{b['protocol']}]: {b['predictions']:,} predictions in {b['seconds']:.2f} s; "
      + ", ".join(f"{k} {m[k]:.4f}" for k in ("hr@10", "ndcg@10", "recall@20", "mrr@20") if k in m))
EOF
}

T0=$(date +%s)
echo "== BERT4Rec, $ML, $EPOCHS epochs ${DEV[*]} ${BERT[*]}"
"${SEQREC[@]}" train bert4rec --train-dir "$ML" --model-dir "$WORK/bert" --epochs "$EPOCHS" --valid-every "$EPOCHS" "${DEV[@]}" "${BERT[@]}" >"$WORK/bert.log" 2>&1 || { tail -5 "$WORK/bert.log"; exit 1; }
epoch_report "$WORK/bert"
"${SEQREC[@]}" evaluate --model-dir "$WORK/bert" --filter-seen "${DEV[@]}" --output-json "$WORK/bert.json" >/dev/null
eval_report "$WORK/bert.json"

echo "== SASRec, $ML, $EPOCHS epochs ${DEV[*]} ${SAS[*]}"
"${SEQREC[@]}" train sasrec --train-dir "$ML" --model-dir "$WORK/sas" --epochs "$EPOCHS" --valid-every "$EPOCHS" "${DEV[@]}" "${SAS[@]}" >"$WORK/sas.log" 2>&1 || { tail -5 "$WORK/sas.log"; exit 1; }
epoch_report "$WORK/sas"
"${SEQREC[@]}" evaluate --model-dir "$WORK/sas" --filter-seen "${DEV[@]}" --output-json "$WORK/sas.json" >/dev/null
eval_report "$WORK/sas.json"

echo "== GRU4Rec, $YC, 1 epoch ${DEV[*]} ${GRU[*]}"
"${SEQREC[@]}" train gru4rec --train-dir "$YC" --model-dir "$WORK/gru" --epochs 1 "${DEV[@]}" "${GRU[@]}" >"$WORK/gru.log" 2>&1 || { tail -5 "$WORK/gru.log"; exit 1; }
epoch_report "$WORK/gru"
"${SEQREC[@]}" evaluate --model-dir "$WORK/gru" "${DEV[@]}" --output-json "$WORK/gru.json" >/dev/null
eval_report "$WORK/gru.json"

if "$PY" -c "import seqrec_cli.distributed" 2>/dev/null; then
  echo "== torchrun, one rank, $NCCL backend: SASRec 1 epoch"
  "$PY" -m torch.distributed.run --nproc-per-node 1 -m seqrec_cli train sasrec --train-dir "$ML" --model-dir "$WORK/ddp" \
    --epochs 1 "${DEV[@]}" "${SAS[@]}" >"$WORK/ddp.log" 2>&1 || { tail -5 "$WORK/ddp.log"; exit 1; }
  epoch_report "$WORK/ddp"
  echo "== two-rank gloo evaluation of the SASRec checkpoint"
  "${SEQREC[@]}" evaluate --model-dir "$WORK/sas" --filter-seen --num-devices 2 --output-json "$WORK/sas2.json" >/dev/null
  eval_report "$WORK/sas2.json"
else
  echo "== (this seqrec has no multi-device training: torchrun checks skipped)"
fi
echo "SUMMARY mode=$MODE wall_s=$(( $(date +%s) - T0 ))"
