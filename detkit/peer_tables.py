"""The tables of MMDetection's, MMSegmentation's and Detectron2's names (config keys, dataset keys, flags, command
words) and detkit's for them; :mod:`detkit.peer_names` answers with them."""

from __future__ import annotations

D2, MM, MM2, MM3 = "Detectron2's", "MMDetection's", "MMDetection 2's", "MMDetection 3's"
MMSEG = "MMSegmentation's"
CLASSES = (
    "detkit takes the classes from the annotation json's categories; a subset of them is a COCO dataset's "
    "classes: [names] (give data.val the same list; docs/datasets.md)"
)
METRICS = (
    "detkit computes the config's metrics (COCO bbox, and segm for a mask model) in `python tools/eval.py "
    "CONFIG CHECKPOINT` and during training"
)
NO_KEY = "detkit has no such key: leave it out (detkit's keys: docs/training.md, 'Config keys')"
ITERATIONS = "in detkit train.max_iters makes the run iteration-based (docs/training.md)"
PER_PROCESS = "images per process; this one is the total of all GPUs"
LR_SCALED = "scaled by the total batch / optimizer.base_batch_size"
PYTHON_CONFIG = (
    "is a Python config (MMDetection / Detectron2 LazyConfig): detkit reads YAML configs only; write a YAML "
    "config (docs/configs.md; `detkit configs` lists the packaged ones to start from)"
)

# a peer's config key (dotted, list indices left out) -> (whose, detkit's: a config key, a --flag, or "" for a
# note only, note)
KEYS: dict[str, tuple[str, str, str]] = {
    # Detectron2 (yacs keys, also as KEY VALUE words after the flags)
    "SOLVER.MAX_ITER": (D2, "train.max_iters", ""),
    "SOLVER.BASE_LR": (D2, "optimizer.lr", LR_SCALED),
    "SOLVER.IMS_PER_BATCH": (D2, "data.batch_size", PER_PROCESS),
    "SOLVER.MOMENTUM": (D2, "optimizer.momentum", ""),
    "SOLVER.NESTEROV": (D2, "optimizer.nesterov", ""),
    "SOLVER.WEIGHT_DECAY": (D2, "optimizer.weight_decay", ""),
    "SOLVER.WEIGHT_DECAY_NORM": (D2, "optimizer.norm_decay", ""),
    "SOLVER.WEIGHT_DECAY_BIAS": (D2, "optimizer.bias_decay", ""),
    "SOLVER.GAMMA": (D2, "scheduler.gamma", ""),
    "SOLVER.STEPS": (D2, "scheduler.milestones", "in epochs, not iterations"),
    "SOLVER.LR_SCHEDULER_NAME": (D2, "scheduler.type", "multistep, cosine, linear or constant"),
    "SOLVER.WARMUP_ITERS": (D2, "scheduler.warmup_iters", ""),
    "SOLVER.WARMUP_FACTOR": (D2, "scheduler.warmup_ratio", ""),
    "SOLVER.CHECKPOINT_PERIOD": (D2, "train.checkpoint_interval", "iterations with train.max_iters"),
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": (D2, "train.grad_clip", "a max gradient norm"),
    "SOLVER.AMP.ENABLED": (D2, "--amp", ""),
    "TEST.EVAL_PERIOD": (D2, "train.eval_interval", "iterations with train.max_iters"),
    "TEST.DETECTIONS_PER_IMAGE": (D2, "model.box_head.max_per_img", ""),
    "DATALOADER.NUM_WORKERS": (D2, "data.num_workers", ""),
    "DATALOADER.REPEAT_THRESHOLD": (D2, "data.repeat_threshold", ""),
    "MODEL.WEIGHTS": (D2, "--load-from", ""),
    "MODEL.DEVICE": (D2, "--device", ""),
    "MODEL.ROI_HEADS.NUM_CLASSES": (D2, "model.num_classes", ""),
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": (D2, "model.box_head.score_thr", ""),
    "MODEL.ROI_HEADS.NMS_THRESH_TEST": (D2, "model.box_head.nms_thr", ""),
    "MODEL.MASK_ON": (D2, "", "in detkit a mask_rcnn_* config has the mask head (`detkit configs` lists them)"),
    "DATASETS.TRAIN": (D2, "", "detkit's data.train is the dataset: {type: CocoDataset, ann_file: ..., img_dir: ...}"),
    "DATASETS.TEST": (D2, "", "detkit's data.val is the dataset: {type: CocoDataset, ann_file: ..., img_dir: ...}"),
    "INPUT": (D2, "", "detkit's sizes are the resize steps of data.train.pipeline and data.val.pipeline"),
    "OUTPUT_DIR": (D2, "--work-dir", ""),
    "SEED": (D2, "--seed", ""),
    "_BASE_": (D2, "", "a Detectron2 config is not read: write a detkit config, `_base_: [FILE]` (docs/configs.md)"),
    # Detectron2 LazyConfig (key=value words)
    "train.max_iter": (D2, "train.max_iters", ""),
    "train.init_checkpoint": (D2, "--load-from", ""),
    "train.output_dir": (D2, "--work-dir", ""),
    "train.eval_period": (D2, "train.eval_interval", "iterations with train.max_iters"),
    "train.checkpointer.period": (D2, "train.checkpoint_interval", "iterations with train.max_iters"),
    "train.device": (D2, "--device", ""),
    "train.seed": (D2, "--seed", ""),
    "train.amp.enabled": (D2, "--amp", ""),
    "dataloader.train.total_batch_size": (D2, "data.batch_size", PER_PROCESS),
    "dataloader.train.num_workers": (D2, "data.num_workers", ""),
    # MMDetection (2 and 3)
    "load_from": (MM, "--load-from", ""),
    "resume": (f"{MM3} and Ultralytics'", "--resume", ""),
    "resume_from": (MM2, "--resume", ""),
    "auto_resume": (MM, "--resume", ""),
    "fp16": (MM2, "--amp", ""),
    "find_unused_parameters": (MM, "train.find_unused_parameters", ""),
    "total_epochs": (MM2, "train.max_epochs", ""),
    "runner.max_epochs": (MM2, "train.max_epochs", ""),
    "runner.max_iters": (MM2, "train.max_iters", ""),
    "runner.type": (MM2, "", ITERATIONS),
    "train_cfg.max_epochs": (MM3, "train.max_epochs", ""),
    "train_cfg.max_iters": (MM3, "train.max_iters", ""),
    "train_cfg.val_interval": (MM3, "train.eval_interval", ""),
    "train_cfg.type": (MM3, "", ITERATIONS),
    "optim_wrapper.optimizer.type": (MM3, "optimizer.type", "SGD, AdamW or Adam"),
    "optim_wrapper.optimizer.lr": (MM3, "optimizer.lr", LR_SCALED),
    "optim_wrapper.optimizer.momentum": (MM3, "optimizer.momentum", ""),
    "optim_wrapper.optimizer.weight_decay": (MM3, "optimizer.weight_decay", ""),
    "optim_wrapper.clip_grad.max_norm": (MM3, "train.grad_clip", ""),
    "optim_wrapper.type": (MM3, "", "AmpOptimWrapper is detkit's --amp"),
    "optimizer_config.grad_clip.max_norm": (MM2, "train.grad_clip", ""),
    "lr_config.policy": (MM2, "scheduler.type", "multistep, cosine, linear or constant"),
    "lr_config.step": (MM2, "scheduler.milestones", ""),
    "lr_config.warmup_iters": (MM2, "scheduler.warmup_iters", ""),
    "lr_config.warmup_ratio": (MM2, "scheduler.warmup_ratio", ""),
    "param_scheduler": (MM3, "", "detkit's: scheduler: {type: multistep, milestones: [8, 11], warmup_iters: 500}"),
    "auto_scale_lr.base_batch_size": (MM, "optimizer.base_batch_size", "detkit always scales; null: off"),
    "auto_scale_lr.enable": (MM, "", "detkit scales the LR unless optimizer.base_batch_size is null"),
    "evaluation.interval": (MM2, "train.eval_interval", ""),
    "evaluation.metric": (MM2, "", METRICS),
    "val_evaluator": (MM3, "", METRICS),
    "test_evaluator": (MM3, "", METRICS),
    "checkpoint_config.interval": (MM2, "train.checkpoint_interval", ""),
    "default_hooks.checkpoint.interval": (MM3, "train.checkpoint_interval", ""),
    "default_hooks.logger.interval": (MM3, "train.log_interval", ""),
    "log_config.interval": (MM2, "train.log_interval", ""),
    "randomness.seed": (MM3, "--seed", ""),
    "data.samples_per_gpu": (MM2, "data.batch_size", ""),
    "data.workers_per_gpu": (MM2, "data.num_workers", ""),
    "train_dataloader.batch_size": (MM3, "data.batch_size", ""),
    "train_dataloader.num_workers": (MM3, "data.num_workers", ""),
    "train_dataloader.dataset": (MM3, "", "detkit's data.train is the dataset"),
    "val_dataloader.batch_size": (MM3, "data.val_batch_size", ""),
    "val_dataloader.dataset": (MM3, "", "detkit's data.val is the dataset"),
    "test_dataloader.dataset": (MM3, "", "detkit's data.test is the dataset"),
    "train_pipeline": (MM, "", "detkit's is the dataset's pipeline, data.train.pipeline"),
    "test_pipeline": (MM, "", "detkit's is the dataset's pipeline, data.val.pipeline"),
    "img_norm_cfg": (MM2, "", "detkit's are model.preprocess.pixel_mean and pixel_std"),
}
# detkit's own keys that peers also use (MMDetection 2's and LazyConfig's optimizer.lr) -> the note their override
# takes, where detkit's meaning differs from the peer's
OWN_KEY_NOTES: dict[str, str] = {"optimizer.lr": LR_SCALED}
# keys of a dataset (data.train.metainfo, data.val.dataset.img_prefix): key -> (whose, detkit's key there, note)
DATASET_KEYS: dict[str, tuple[str, str, str]] = {
    "metainfo": (MM3, "", CLASSES),
    "classes": (MM2, "", CLASSES),
    "img_prefix": (MM2, "img_dir", ""),
    "data_prefix": (MM3, "img_dir", ""),
    "filter_empty_gt": (MM2, "filter_empty", ""),
    "filter_cfg": (MM3, "filter_empty", "true leaves out the images without annotations"),
    "data_root": (MM, "", "detkit's ann_file and img_dir are whole paths"),
    "test_mode": (MM, "", NO_KEY),
    "ignore_index": (
        MMSEG,
        "",
        "detkit's ignore value is model.ignore_index, which stays 255: map the data's own ignore value to 255 with "
        "the dataset's label_map, e.g. {254: 255}",
    ),
}
# top-level names of the peers' configs with no detkit key: their keys are answered with NO_KEY
ROOTS = {
    D2: (
        *("MODEL", "SOLVER", "INPUT", "DATASETS", "DATALOADER", "TEST", "CUDNN_BENCHMARK", "VIS_PERIOD", "VERSION"),
        *("dataloader", "lr_multiplier"),  # LazyConfig's
    ),
    MM: (
        *("default_scope", "env_cfg", "vis_backends", "visualizer", "log_processor", "log_level", "launcher"),
        *("dist_params", "workflow", "custom_hooks", "custom_imports", "backend_args", "dataset_type", "val_cfg"),
        "test_cfg",
        *{k.split(".")[0] for k in KEYS if k[:1].islower() and not k.startswith(("train.", "dataloader."))},
    ),
}

D2_CONFIG = (
    "a Detectron2 config: detkit does not read one; write a detkit YAML config (docs/configs.md; `detkit configs` "
    "lists the packaged ones; docs/training.md, 'Coming from MMDetection / Detectron2', gives detkit's keys)"
)


# a peer's flag -> (whose, how many values it takes: 0, 1 or "*", detkit's: a flag, a --set, or words)
FLAGS: dict[str, tuple[str, int | str, str]] = {
    "--config-file": (D2, 1, "CONFIG"),
    "--eval-only": (D2, 0, "`python tools/eval.py CONFIG CHECKPOINT` evaluates a checkpoint"),
    "--opts": (D2, "*", "--set"),
    "--cfg-options": (MM, "*", "--set"),
    "--options": (MM2, "*", "--set"),
    "--eval": (MM2, "*", METRICS),
    "--eval-options": (MM2, "*", METRICS),
    "--show-dir": (MM, 1, "`python tools/infer.py CONFIG CHECKPOINT INPUT... --out-dir DIR` draws the results"),
    "--show": (MM, 0, "`python tools/infer.py CONFIG CHECKPOINT INPUT... --out-dir DIR` draws the results"),
    "--auto-resume": (MM, 0, "--resume"),
    "--resume-from": (MM2, 1, "--resume"),
    "--no-validate": (MM, 0, "--set data.val=null"),
    "--auto-scale-lr": (MM, 0, "detkit scales the LR by the total batch / optimizer.base_batch_size (null: off)"),
}
# a peer's command word -> (whose script it is, detkit's command)
COMMANDS: dict[str, tuple[str, str]] = {
    "test": ("MMDetection's tools/test.py", "eval CONFIG CHECKPOINT"),
    "image_demo": ("MMDetection's demo/image_demo.py", "infer CONFIG CHECKPOINT INPUT..."),
    "demo": ("Detectron2's demo/demo.py", "infer CONFIG CHECKPOINT INPUT..."),
    "browse_dataset": ("MMDetection's tools/misc/browse_dataset.py", "browse CONFIG"),
    "analyze_logs": ("MMDetection's tools/analysis_tools/analyze_logs.py", "plot-logs WORK_DIR"),
    "get_flops": ("MMDetection's tools/analysis_tools/get_flops.py", "model-stats CONFIG"),
}
