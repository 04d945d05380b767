#!/usr/bin/env bash
# The whole seqrec pipeline on the bundled sample, offline, in a couple of minutes on a laptop CPU:
# preprocess (the real ML-1M pipeline on a synthetic ratings.dat) -> GRU4Rec -> BERT4Rec (pretrain +
# fine-tune) -> SASRec -> infer / evaluate (labelled protocols) -> recommend -> the training curves
# (demo_output/curves.png). Outputs go to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo_output
rm -rf "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "preprocess: data/sample/raw/ratings.dat -> $OUT/data (leave-one-out, as for ML-1M)"
seqrec preprocess ml-1m --input data/sample/raw/ratings.dat --out-dir "$OUT/data" --vocab "$OUT/vocab.txt" --name sample

step "train GRU4Rec (session-parallel, sampled softmax with logQ)"
seqrec train gru4rec --train-dir "$OUT/data" --model-dir "$OUT/gru4rec" --epochs 3 --hidden-size 64 --n-sample 128 --lr 0.1 --dropout-hidden 0.1
seqrec infer --model-dir "$OUT/gru4rec" --start-index 1 --last-index 3

step "pretrain BERT4Rec (cloze), then fine-tune from it"
seqrec pretrain bert4rec --train-dir "$OUT/data" --model-dir "$OUT/bert4rec_pretrain" --epochs 5 --max-len 50 --lr 3e-3 --batch-size 64
# --objective both (the paper's: cloze and last-item samples): twice the samples per epoch, what 30 epochs on the small sample need
seqrec train bert4rec --train-dir "$OUT/data" --model-dir "$OUT/bert4rec" --init-from "$OUT/bert4rec_pretrain/epoch_5" --epochs 30 --lr 3e-3 --batch-size 64 --valid-every 3 --objective both
seqrec infer --model-dir "$OUT/bert4rec" --start-index 28 --last-index 30

step "train SASRec (causal self-attention, cross-entropy over all items at every position)"
seqrec train sasrec --train-dir "$OUT/data" --model-dir "$OUT/sasrec" --epochs 8 --max-len 50 --batch-size 64 --lr 3e-3 --warmup-steps 10 --valid-every 2
seqrec evaluate --model-dir "$OUT/sasrec" --filter-seen --cutoffs 10

step "evaluate the best BERT4Rec epoch: full ranking, then the papers' sampled protocol"
seqrec evaluate --model-dir "$OUT/bert4rec"
seqrec evaluate --model-dir "$OUT/bert4rec" --negatives 100 --sampling popularity

step "recommend: top-10 raw item ids per user"
seqrec recommend --model-dir "$OUT/bert4rec" --top-k 10 --output "$OUT/recommendations.tsv"
head -4 "$OUT/recommendations.tsv"

step "the training curves of the runs (loss per epoch and per logged steps, validation NDCG@10)"
seqrec plot "$OUT/gru4rec" "$OUT/bert4rec" "$OUT/sasrec" --output "$OUT/curves.png"
