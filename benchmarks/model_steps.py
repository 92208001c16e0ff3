"""Training-step throughput of the recipes' models, "seed mode" beside "fast mode", every row in one process.

Workloads: the recipes of fer/recipes.yaml, built and stepped by the engine's own `build_model` / `make_step`:
  mae_pretrain        MAE ViT-B/16 pretraining, 224 px, mask 0.75              (mae_sfer_vit_base_pretrain)
  video_mae_pretrain  LGI-Former video MAE pretraining, 16x160x160, tube mask 0.9 (mae_dfer_pretrain_voxceleb2)
  lgi_finetune        LGI-Former finetuning, 16x160x160, mixup / cutmix         (mae_dfer_finetune_dfew)
  vit_finetune        ViT-B/16 finetuning, 224 px, mixup / cutmix               (mae_sfer_vit_base_finetune)

Modes (one optimizer step = forward + backward + optimizer):
  seed  what the seeds' code does (facebookresearch/mae `engine_pretrain.py` / `util/misc.py` NativeScaler,
        MAE-DFER `engine_for_pretraining.py`): fp16 autocast + GradScaler, explicit softmax(QK^T)V attention,
        AdamW(foreach=False, fused=False), eager; every step reads loss.item(), the grad norm and the loss scale,
        and calls torch.cuda.synchronize().
  fast  the engine's GPU default plus compilation: bf16 autocast, F.scaled_dot_product_attention, torch.compile,
        the engine's AdamW (fused on CUDA), gradient norm and non-finite count kept on the device and read once
        every log_every steps.

Columns: samples/s, speed-up over seed mode, MFU (forward + backward FLOPs from torch.utils.flop_counter over the
GPU's dense bf16 peak), peak memory, largest batch that fits (doubling + bisection, catching OOM), skipped steps
(GradScaler scale decreases) and Inf/NaN gradient norms over the run, host syncs inside one step, graph breaks.

    python benchmarks/model_steps.py                      # on a GPU: 200 steps per row, batch search
    python benchmarks/model_steps.py --tiny               # tiny models on the CPU, < 2 minutes
    python benchmarks/model_steps.py --markdown benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    Timer,
    fmt,
    largest_fitting,
    measured_matmul_tflops,
    peak_bf16_tflops,
    pick_device,
    report,
    run_header,
    synchronize,
)
from fer.datasets import demo  # noqa: E402
from fer.engine.finetune import build_model as build_classifier  # noqa: E402
from fer.engine.finetune import make_step as classifier_step  # noqa: E402
from fer.engine.finetune import resolve_labels  # noqa: E402
from fer.engine.loop import grad_norm  # noqa: E402
from fer.engine.optim import build_optimizer, param_groups, scaled_lr, set_lr  # noqa: E402
from fer.engine.pretrain import build_model as build_pretrain_model  # noqa: E402
from fer.engine.pretrain import make_step as pretrain_step  # noqa: E402
from fer.engine.recipes import PRETRAIN_KINDS, resolve  # noqa: E402

MODES = ("seed", "fast")
NUM_CLASSES = 7  # RAF-DB / DFEW
POOL_BATCHES = 4  # distinct batches cycled on the device, so no step reuses the previous step's input

# Tiny shapes for --tiny on the CPU: 64 px images, 4-frame 64 px clips, 2 blocks of width 64.
_TINY_ENC = {"img_size": 64, "embed_dim": 64, "depth": 2, "num_heads": 2}
_TINY_DEC = {"decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 2}
_TINY_VIDEO = {"all_frames": 4, "lg_region_size": [2, 2, 2]}


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    tiny_label: str
    recipe: str
    tiny: dict = field(default_factory=dict)

    def name(self, tiny: bool) -> str:
        return self.tiny_label if tiny else self.label


WORKLOADS = (
    Workload(
        "mae_pretrain",
        "MAE ViT-B/16 pretrain 224 px, mask 0.75",
        "tiny MAE ViT pretrain 64 px, mask 0.75",
        "mae_sfer_vit_base_pretrain",
        {"input_size": 64, "model_kwargs": {**_TINY_ENC, **_TINY_DEC}},
    ),
    Workload(
        "video_mae_pretrain",
        "LGI-Former video MAE pretrain 16x160x160, tube mask 0.9",
        "tiny LGI-Former video MAE pretrain 4x64x64, tube mask 0.9",
        "mae_dfer_pretrain_voxceleb2",
        {"input_size": 64, "num_frames": 4, "model_kwargs": {**_TINY_ENC, **_TINY_DEC, **_TINY_VIDEO}},
    ),
    Workload(
        "lgi_finetune",
        "LGI-Former finetune 16x160x160",
        "tiny LGI-Former finetune 4x64x64",
        "mae_dfer_finetune_dfew",
        {"input_size": 64, "num_frames": 4, "model_kwargs": {**_TINY_ENC, **_TINY_VIDEO}},
    ),
    Workload(
        "vit_finetune",
        "ViT-B/16 finetune 224 px",
        "tiny ViT finetune 64 px",
        "mae_sfer_vit_base_finetune",
        {"input_size": 64, "model_kwargs": dict(_TINY_ENC)},
    ),
)
BY_KEY = {w.key: w for w in WORKLOADS}

COLUMNS = (
    "workload", "mode", "batch", "samples/s", "speed-up", "MFU", "GFLOP/sample", "peak mem GiB", "max batch",
    "steps", "skipped steps", "inf/nan grad norms", "syncs/step", "graph breaks", "warm-up s",
)  # fmt: skip


class NonFiniteLoss(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------------- set-up


def workload_cfg(wl: Workload, batch_size: int | None, tiny: bool, mode: str, device: torch.device) -> dict:
    """The recipe resolved with the benchmark's batch (default: the recipe's effective batch per GPU)."""
    base = resolve(wl.recipe)
    batch = batch_size or int(base["batch_size"]) * int(base["accum_iter"])
    overrides = {"batch_size": batch, "accum_iter": 1, "precision": mode, "device": str(device)}
    if base["kind"] not in PRETRAIN_KINDS:
        overrides["num_classes"] = NUM_CLASSES
    if tiny:
        overrides.update(wl.tiny)
    cfg = resolve(wl.recipe, overrides)
    # seed mode: the seeds' explicit softmax attention; fast mode: SDPA (every model factory takes fused_attn)
    cfg["model_kwargs"] = {**cfg["model_kwargs"], "fused_attn": mode == "fast"}
    return resolve_labels(cfg) if cfg["kind"] not in PRETRAIN_KINDS else cfg


def build(cfg: dict, device: torch.device):
    """(model on device, step_fn(net, batch) -> loss) exactly as the engine builds them."""
    torch.manual_seed(0)  # both modes start from the same weights
    if cfg["kind"] in PRETRAIN_KINDS:
        return build_pretrain_model(cfg).to(device), pretrain_step(cfg, device)
    return build_classifier(cfg).to(device), classifier_step(cfg, device)


def input_pool(cfg: dict, size: int, device: torch.device, seed: int = 0):
    """`size` demo faces (or clips) of fer.datasets.demo at the recipe's input size, ImageNet-normalised."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, size)
    side, frames = int(cfg["input_size"]), cfg.get("num_frames")
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    if frames:
        clips = [demo.make_expression_clip(int(c), rng, num_frames=int(frames), size=side) for c in labels]
        x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float().div_(255)  # [N, 3, T, H, W]
        x = (x - mean[..., None]) / std[..., None]
    else:
        faces = [demo.make_expression_face(int(c), rng, size=side) for c in labels]
        x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float().div_(255)
        x = (x - mean) / std
    return x.to(device), torch.from_numpy(labels).to(device)


def pool_batch(pool, n: int, k: int):
    x, y = pool
    idx = (torch.arange(n, device=x.device) + k * n) % x.shape[0]
    return x[idx], y[idx]


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """fp16 (seed) or bf16 (fast) if autocast in that dtype works on this device, else None (fp32)."""
    dtype = torch.float16 if mode == "seed" else torch.bfloat16
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return None
    try:
        with torch.autocast(device.type, dtype=dtype):
            torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except (RuntimeError, ValueError):
        return None
    return dtype


def count_flops(cfg: dict, device: torch.device) -> float:
    """Forward + backward FLOPs per sample: one fp32 eager step on 2 samples under FlopCounterMode.

    Counted with explicit attention (fused_attn=False): the flop counter has formulas for the CUDA SDPA kernels
    but not for the CPU one, and the matrix products are the same in both.
    """
    cfg = {**cfg, "model_kwargs": {**cfg["model_kwargs"], "fused_attn": False}}
    model, step_fn = build(cfg, device)
    model.train()
    batch = input_pool(cfg, 2, device, seed=1)
    with FlopCounterMode(display=False) as counter:
        step_fn(model, batch).backward()
    del model
    return counter.get_total_flops() / 2


# ----------------------------------------------------------------------------------------------- one mode


class Run:
    """Model, optimizer and scaler of one mode, with the step that mode takes and its counters."""

    def __init__(self, cfg: dict, mode: str, device: torch.device, compile_model: bool, log_every: int):
        self.cfg, self.mode, self.device, self.log_every = cfg, mode, device, log_every
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # as both the seeds and the engine
            torch.backends.cuda.matmul.allow_tf32 = mode == "fast"  # the engine's fast setup; torch's default
            torch.backends.cudnn.allow_tf32 = True
        self.model, self.step_fn = build(cfg, device)
        self.model.train()
        lr = float(cfg["lr"]) if cfg.get("lr") else scaled_lr(float(cfg["blr"]), int(cfg["batch_size"]))
        betas = tuple(cfg.get("opt_betas") or (0.9, 0.999))
        if mode == "seed":
            groups = param_groups(self.model, cfg["weight_decay"], cfg.get("layer_decay", 1.0),
                                  cfg.get("layer_decay_type", "vit"))  # fmt: skip
            for g in groups:
                g.pop("names")
            self.opt = torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=False, fused=False)
        else:
            self.opt = build_optimizer(self.model, cfg, lr, device)
        set_lr(self.opt, lr)  # constant at the recipe's peak lr (with its layer decay)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.amp_dtype = autocast_dtype(mode, device)
        self.new_scaler()
        self.net = torch.compile(self.model) if compile_model else self.model
        self.steps = self.skipped = self.nonfinite = 0
        self._bad = torch.zeros((), dtype=torch.int32, device=device)
        self._loss_sum = torch.zeros((), device=device)
        self._window = 0
        self.last_norm = None

    def new_scaler(self) -> None:
        enabled = self.mode == "seed" and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=enabled)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def step(self, batch, log: bool = True) -> None:
        (self._seed_step if self.mode == "seed" else self._fast_step)(batch, log)
        self.steps += 1

    def _seed_step(self, batch, log: bool) -> None:
        with self.autocast():
            loss = self.step_fn(self.net, batch)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLoss(f"loss {loss_value} at step {self.steps}")
        scale = self.scaler.get_scale()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        norm = grad_norm(self.params)  # the seeds' get_grad_norm_: one norm per parameter, then their norm
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=False)  # the seeds' torch zeroed gradients in place
        self.nonfinite += not math.isfinite(norm.item())
        self.skipped += self.scaler.get_scale() < scale
        synchronize(self.device)

    def _fast_step(self, batch, log: bool) -> None:
        with self.autocast():
            loss = self.step_fn(self.net, batch)
        loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        self._bad += (~torch.isfinite(norm)).int()
        self._loss_sum += loss.detach().float()
        self._window += 1
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if log and (self.steps + 1) % self.log_every == 0:  # the logging interval: the one host read
            loss_mean, self.last_norm, bad = torch.stack(
                [self._loss_sum / self._window, norm.float(), self._bad.float()]
            ).tolist()
            self._loss_sum.zero_()
            self._window = 0
            self.nonfinite = int(bad)
            if not math.isfinite(loss_mean):
                raise NonFiniteLoss(
                    f"mean loss {loss_mean} in the {self.log_every} steps up to {self.steps + 1}"
                )

    def finish(self) -> None:
        if self.mode == "fast":
            self.nonfinite = int(self._bad.item())

    def syncs_in_one_step(self, batch) -> int | None:
        """Synchronising CUDA calls inside one non-logging step (torch.cuda.set_sync_debug_mode)."""
        if self.device.type != "cuda":
            return None
        synchronize(self.device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                self.step(batch, log=False)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message).lower() for w in caught)

    def fits(self, pool, n: int) -> bool:
        """One step on a batch of n samples of the pool; False on CUDA out-of-memory (cleaned up for the next)."""
        self.new_scaler()  # a step cut short by OOM leaves no half-updated scaler behind
        ok = False
        try:
            self.step(pool_batch(pool, n, 0), log=False)
            synchronize(self.device)
            ok = True
        except Exception as err:  # OOM also reaches us wrapped (e.g. by the compiler while it autotunes)
            if not isinstance(err, torch.OutOfMemoryError) and "out of memory" not in str(err).lower():
                raise
        self.opt.zero_grad(set_to_none=True)  # outside the except block: the traceback's tensors are gone
        gc.collect()
        torch.cuda.empty_cache()
        return ok


def graph_break_count() -> int:
    from torch._dynamo.utils import counters

    return int(sum(counters["graph_break"].values()))


def free(device: torch.device) -> None:
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(
    wl: Workload, mode: str, args, device: torch.device, pool, flops: float, peak: float | None
) -> dict:
    cfg = workload_cfg(wl, args.batch_size, args.tiny, mode, device)
    batch = int(cfg["batch_size"])
    compile_model = mode == "fast" and args.compile_model
    log_every = args.log_every or int(cfg.get("log_every") or 20)
    free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)  # the input pool: not part of training
    if compile_model:
        from torch._dynamo.utils import counters

        counters.clear()
    run = Run(cfg, mode, device, compile_model, log_every)
    batches = [pool_batch(pool, batch, k) for k in range(POOL_BATCHES)]
    row = {"workload": wl.name(args.tiny), "mode": mode, "batch": batch, "gflop": flops / 1e9}
    try:
        with Timer(device) as warm:
            for _ in range(args.warmup):
                run.step(batches[run.steps % POOL_BATCHES])
        row["syncs"] = run.syncs_in_one_step(batches[run.steps % POOL_BATCHES])
        with Timer(device) as timed:
            for _ in range(args.steps):
                run.step(batches[run.steps % POOL_BATCHES])
        run.finish()
    except Exception as err:  # one failing row (divergence, a compiler error) must not lose the others
        traceback.print_exc()
        row["error"] = f"stopped: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
        return row
    rate = args.steps * batch / timed.seconds
    row.update(
        rate=rate, warmup_s=warm.seconds, steps=run.steps, skipped=run.skipped, nonfinite=run.nonfinite
    )
    row["mfu"] = flops * rate / (peak * 1e12) if peak else None
    row["graph_breaks"] = graph_break_count() if compile_model else None
    if device.type == "cuda":
        row["peak_gib"] = (torch.cuda.max_memory_allocated(device) - before) / 2**30
        if args.max_batch:
            del batches
            probe = run.fits
            try:
                row["max_batch"] = largest_fitting(lambda n: probe(pool, n), batch, args.max_batch_limit)
                row["max_batch_capped"] = row["max_batch"] >= args.max_batch_limit
            except Exception as err:  # keep the row's measurements; say why the search stopped
                traceback.print_exc()
                row["max_batch_error"] = f"search failed: {type(err).__name__}"
            del probe
    del run
    free(device)
    return row


# ----------------------------------------------------------------------------------------------- table


def table_rows(results: list[dict]) -> list[list[str]]:
    seed_rate = {r["workload"]: r.get("rate") for r in results if r["mode"] == "seed"}
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["workload"], r["mode"], r["batch"], r["error"], *["-"] * (len(COLUMNS) - 4)])
            continue
        base = seed_rate.get(r["workload"])
        speedup = f"{r['rate'] / base:.2f}x" if base else "-"
        max_batch = r.get("max_batch_error") or r.get("max_batch")
        if isinstance(max_batch, int):
            max_batch = f">={max_batch}" if r.get("max_batch_capped") else str(max_batch)
        rows.append([
            r["workload"], r["mode"], r["batch"], fmt(r["rate"]), speedup,
            "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%", f"{r['gflop']:.3g}",
            fmt(r.get("peak_gib"), 2), max_batch or "-", r["steps"], r["skipped"], r["nonfinite"],
            "-" if r["syncs"] is None else r["syncs"], "-" if r["graph_breaks"] is None else r["graph_breaks"],
            fmt(r["warmup_s"]),
        ])  # fmt: skip
    return rows


def notes(args, device: torch.device, peak: float | None, matmul: float | None, pool: int) -> list[str]:
    out = [
        f"samples/s over {args.steps} timed steps after {args.warmup} warm-up steps (warm-up s includes "
        f"compilation); speed-up = fast / seed samples/s of the same workload, measured in this process",
        "inputs: demo faces / clips of fer.datasets.demo at the recipe's input size, ImageNet-normalised, "
        f"{POOL_BATCHES} distinct batches cycled on the device (at most {pool} distinct samples); lr constant at "
        "the recipe's peak (blr x batch / 256, with its layer decay), no warm-up, mixup / cutmix as the recipe",
        "skipped steps: GradScaler scale decreases (fp16 overflow, update skipped); inf/nan grad norms: "
        "non-finite global gradient norms; both over all `steps` (warm-up + timed + the sync-count step); bf16 "
        "fast mode has no scaler, so it can skip nothing, and a non-finite norm there would be counted",
        "GFLOP/sample: forward + backward, torch.utils.flop_counter on an fp32 eager step of 2 samples "
        "(matrix products, convolutions, attention; elementwise ops not counted)",
    ]
    if peak:
        ceiling = f"; a bf16 8192^3 matmul ran at {matmul:.0f} TFLOP/s here" if matmul else ""
        out.append(
            f"MFU = GFLOP/sample x samples/s / {peak:.0f} TFLOP/s (dense bf16 peak of this GPU{ceiling})"
        )
    else:
        what = "CPU" if device.type == "cpu" else "this GPU (not in the table; pass --peak-tflops)"
        out.append(f"MFU: no bf16 peak for {what}")
    if device.type == "cuda":
        out.append(
            "syncs/step: synchronising CUDA calls in one non-logging step (torch.cuda.set_sync_debug_mode)"
        )
        out.append(
            "peak mem: torch.cuda.max_memory_allocated during the row (model, optimizer state, activations, the "
            f"{POOL_BATCHES} input batches) minus what was allocated before it (the input pool)"
        )
        if args.max_batch:
            out.append(
                f"max batch: doubling from the row's batch then bisection to 1/8, one step per probe, "
                f"catching OOM (up to {args.max_batch_limit}); fast mode probes run compiled (dynamic batch)"
            )
    else:
        out.append("peak mem, max batch, syncs/step: measured on CUDA only")
    if not args.compile_model:
        why = " (on this CPU a tiny MAE took ~100 s to compile; --compile on forces it)"
        out.append("torch.compile: off in fast mode" + (why if device.type == "cpu" else ""))
    if args.tiny:
        out.append(
            "--tiny: models shrunk to width 64, 2 blocks (decoders 32 wide, 1 block), 64 px images, 4-frame "
            "64 px clips with 2x2x2 LGI regions; autocast dtypes as on the GPU where this device supports them"
        )
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models and inputs on the CPU (< 2 minutes)")
    ap.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda[:N]")
    ap.add_argument("--workloads", nargs="+", choices=list(BY_KEY), default=list(BY_KEY))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument(
        "--batch-size", type=int, default=None, help="default: the recipe's batch x accum_iter (--tiny 16)"
    )
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 200, --tiny 4)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 10, --tiny 2)")
    ap.add_argument(
        "--log-every", type=int, default=None, help="fast mode's host read (default: the recipe's)"
    )
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="auto: on for CUDA only")
    ap.add_argument("--max-batch", action=argparse.BooleanOptionalAction, default=None,
                    help="search the largest batch that fits (default: on for CUDA)")  # fmt: skip
    ap.add_argument("--max-batch-limit", type=int, default=4096)
    ap.add_argument("--pool-size", type=int, default=256, help="distinct demo samples at most")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, overriding the table")
    ap.add_argument("--markdown", default=None, help="append the table to this markdown file")
    args = ap.parse_args(argv)
    device = pick_device("cpu" if args.tiny and args.device == "auto" else args.device)
    args.batch_size = args.batch_size or (16 if args.tiny else None)
    args.steps = args.steps or (4 if args.tiny else 200)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 10)
    args.log_every = args.log_every or (2 if args.tiny else None)
    args.compile_model = args.compile == "on" or (args.compile == "auto" and device.type == "cuda")
    args.max_batch = (
        device.type == "cuda" if args.max_batch is None else args.max_batch and device.type == "cuda"
    )
    if args.tiny:
        args.pool_size = min(args.pool_size, 16)
    header = run_header(device, __file__, argv)
    peak = args.peak_tflops or (
        peak_bf16_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    )
    matmul = measured_matmul_tflops(device)

    t0 = time.perf_counter()
    results = []
    for key in args.workloads:
        wl = BY_KEY[key]
        cfg = workload_cfg(wl, args.batch_size, args.tiny, "seed", device)
        flops = count_flops(cfg, device)
        pool = input_pool(cfg, min(int(cfg["batch_size"]) * POOL_BATCHES, args.pool_size), device)
        for mode in [m for m in MODES if m in args.modes]:
            results.append(measure(wl, mode, args, device, pool, flops, peak))
            print(
                f"  measured {wl.key} {mode} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True
            )
    title = "Model steps: seed mode vs fast mode" + (" (--tiny)" if args.tiny else "")
    report(title, header, COLUMNS, table_rows(results), notes(args, device, peak, matmul, args.pool_size),
           args.markdown)  # fmt: skip
    return results


if __name__ == "__main__":
    main()
