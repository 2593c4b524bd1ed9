#!/usr/bin/env bash
# The CUDA checks of a session with a lent GPU (docs/benchmarks.md, "On a GPU"): the CUDA tests, a short
# training run through torchrun (NCCL) with AMP, evaluation and prediction on the GPU, then the benchmark rows
# against Ultralytics and torchvision on the same GPU (fp32 and AMP).
#
#   bash docs/cuda_checks.sh OUT_DIR [STEP ...]     steps: env tests bench_yolo bench_rcnn train compile (default all)
#
# Needs detkit's requirements and, for the comparison rows, Ultralytics (pip install --no-deps ultralytics
# ultralytics-thop). Each step runs under its own time limit; a failed step is recorded and the next one runs.
# OUT_DIR receives log.txt (everything), bench.md (the benchmark rows) and summary.txt (each step's status).
set -u
OUT_DIR=${1:?usage: bash docs/cuda_checks.sh OUT_DIR [STEP ...]}
shift
STEPS=${*:-env tests bench_yolo bench_rcnn train compile}
mkdir -p "$OUT_DIR"
LOG=$OUT_DIR/log.txt
SUMMARY=$OUT_DIR/summary.txt
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/detkit_cuda}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: a dry run of the steps' command lines on a machine without a GPU (no AMP)
AMP=(--amp)
[[ $DEVICE == cpu ]] && AMP=()
mkdir -p "$WORK"

# run NAME SECONDS COMMAND...: one step under `timeout`, its output appended to log.txt, its status to summary.txt
run() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "=== $name: $*" | tee -a "$LOG"
    timeout --kill-after 10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    printf '%-28s rc %-3s %4ss\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$SUMMARY" "$LOG"
}

want() { [[ " $STEPS " == *" $1 "* ]]; }

if want env; then
    run nvidia-smi 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    run versions 60 "$PY" -c "import torch, torchvision, cv2, pycocotools, albumentations, detkit; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), \
'torchvision', torchvision.__version__, 'detkit', detkit.__version__, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
fi

if want tests; then
    run test_cuda 300 "$PY" -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/engine/test_dist.py \
        tests/utils/test_device.py tests/models/losses/test_bce.py tests/ops/test_tal.py \
        "tests/engine/test_real_parts.py::test_exact_resume_on_cuda"
fi

B=(--device "$DEVICE" --md "$OUT_DIR/bench.md")
if want bench_yolo; then
    for m in n s; do
        run "bench_yolo_${m}_train" 200 "$PY" tools/benchmark.py "configs/yolo/yolo_${m}_coco.yaml" --task train \
            --compare ultralytics --train-size 640 --batch 8 --iters 20 --warmup 5 --amp fp16 --repeat 2 "${B[@]}"
    done
    for m in n s; do
        run "bench_yolo_${m}_infer" 150 "$PY" tools/benchmark.py "configs/yolo/yolo_${m}_coco.yaml" --task infer \
            --compare ultralytics --size 640 640 --iters 50 --warmup 10 "${B[@]}"
    done
fi
if want bench_rcnn; then
    for c in faster_rcnn/faster_rcnn mask_rcnn/mask_rcnn; do
        run "bench_${c#*/}_train" 200 "$PY" tools/benchmark.py "configs/${c}_r50_fpn_1x_coco.yaml" --task train \
            --compare torchvision --iters 20 --warmup 5 --amp fp16 "${B[@]}"
        run "bench_${c#*/}_infer" 150 "$PY" tools/benchmark.py "configs/${c}_r50_fpn_1x_coco.yaml" --task infer \
            --compare torchvision --iters 20 --warmup 5 "${B[@]}"
    done
fi
if want train; then
    # the shapes data; YOLO n and Faster R-CNN R18 trained a little through torchrun (one process: no process group), AMP fp16
    [[ -f data/shapes/val.json ]] || run make_shapes 120 "$PY" tools/make_shapes.py data/shapes
    run train_yolo_torchrun_amp 240 "$PY" -m torch.distributed.run --nproc-per-node 1 tools/train.py \
        configs/yolo/yolo_n_shapes.yaml --device "$DEVICE" "${AMP[@]}" --work-dir "$WORK/yolo" --exist-ok \
        --set train.max_epochs=6
    run eval_yolo 120 "$PY" tools/eval.py configs/yolo/yolo_n_shapes.yaml "$WORK/yolo/best.pth" --device "$DEVICE" \
        --out "$WORK/yolo/eval.json"
    run infer_yolo 120 "$PY" tools/infer.py configs/yolo/yolo_n_shapes.yaml "$WORK/yolo/best.pth" data/shapes/val \
        --device "$DEVICE" --out-dir "$WORK/yolo/pred"
    run train_frcnn_torchrun_amp 240 "$PY" -m torch.distributed.run --nproc-per-node 1 tools/train.py \
        configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml --device "$DEVICE" "${AMP[@]}" --work-dir "$WORK/frcnn" \
        --exist-ok --set train.max_epochs=2
    run eval_frcnn 120 "$PY" tools/eval.py configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml \
        "$WORK/frcnn/best.pth" --device "$DEVICE" --out "$WORK/frcnn/eval.json"
fi

if want compile; then
    run bench_yolo_n_train_compiled 300 "$PY" tools/benchmark.py configs/yolo/yolo_n_coco.yaml --task train \
        --compare ultralytics --train-size 640 --batch 8 --iters 20 --warmup 5 --compile "${B[@]}"
fi
echo "--- summary"
cat "$SUMMARY"
grep -E '^\|' "$OUT_DIR/bench.md" 2>/dev/null | cut -c1-400
