"""The training loop shared by pretraining and finetuning (facebookresearch/mae `engine_*.train_one_epoch`).

Per micro-batch: set the lr (per iteration, at the start of each accumulation window), forward under autocast,
stop on a non-finite loss, backward (`no_sync` inside an accumulation window under DDP); per optimizer step: unscale,
clip / measure the gradient norm, step, update the EMA, log, checkpoint every `save_every_steps` and stop cleanly
when SIGTERM / SIGUSR1 arrived. At the end of each epoch: checkpoint, then the caller's `on_epoch_end` (evaluation).

Precision: "fast" = bf16 autocast on GPU (no scaler), "seed" = fp16 autocast + GradScaler as the seeds'
NativeScaler, "fp32" = none; on CPU always fp32.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from fer.io import write_json
from fer.tracking import Tracker

from . import checkpoint as ckpt
from .distributed import (
    DistEnv,
    ResumableSampler,
    SeededDataset,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
    per_process_batch,
)
from .optim import build_optimizer, effective_batch_size, lr_at, scaled_lr, set_lr

log = logging.getLogger(__name__)

PRECISIONS = ("fast", "seed", "fp32")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message names the step and the last good checkpoint."""


class ConfigError(ValueError):
    """A run config lacks something the engine needs; the message names the key."""


@dataclass
class Context:
    """What one training job knows about where and how it runs."""

    cfg: dict
    env: DistEnv
    output_dir: Path
    amp_dtype: torch.dtype | None
    tracker: Tracker
    started: float = field(default_factory=time.time)

    @property
    def device(self) -> torch.device:
        return self.env.device

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM / SIGUSR1 to the main process, which saves and stops at a step boundary;
    a worker killed by the signal (scancel and preemption signal the whole process group) would crash it first."""
    for signum in ckpt.STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def require(cfg: dict, *keys: str) -> None:
    for key in keys:
        node = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node in (None, "", [], {}):
            raise ConfigError(
                f"config key {key!r} is required (set it in the recipe overrides or on the command line)"
            )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup(cfg: dict) -> Context:
    """Join the process group, pick device and precision, seed, open the MLflow run (rank 0)."""
    require(cfg, "output_dir", "data.train")
    precision = cfg.get("precision", "fast")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    env = init_distributed(cfg.get("device", "auto"))
    output_dir = Path(cfg["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    amp_dtype = None
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if precision == "fast":
            amp_dtype = torch.bfloat16
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        elif precision == "seed":
            amp_dtype = torch.float16
    # Same seed on every rank for model init (DDP broadcasts rank 0's weights anyway); per-rank afterwards.
    seed_everything(int(cfg.get("seed", 0)))
    tracker = Tracker(cfg, output_dir, enabled=env.is_main)
    return Context(cfg=cfg, env=env, output_dir=output_dir, amp_dtype=amp_dtype, tracker=tracker)


def to_device(x, device: torch.device):
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    return x


def grad_norm(parameters) -> torch.Tensor:
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


StepFn = Callable[[nn.Module, object], torch.Tensor]


class Trainer:
    """Owns the model, optimizer, scaler, EMA and data order of one run; `fit()` trains and checkpoints."""

    def __init__(self, ctx: Context, model: nn.Module, train_set: Dataset, step_fn: StepFn):
        cfg, env = ctx.cfg, ctx.env
        self.ctx, self.cfg, self.env, self.step_fn = ctx, cfg, env, step_fn
        self.accum = int(cfg.get("accum_iter", 1))
        self.batch_size = per_process_batch(
            cfg["batch_size"], cfg.get("global_batch_size"), self.accum, env.world_size
        )
        self.model = model.to(ctx.device)
        self.sampler = ResumableSampler(train_set, env.world_size, env.rank, seed=int(cfg.get("seed", 0)))
        self.loader = DataLoader(
            SeededDataset(train_set, seed=int(cfg.get("seed", 0))), batch_size=self.batch_size,
            sampler=self.sampler, num_workers=int(cfg.get("num_workers", 0)), drop_last=True,
            worker_init_fn=ignore_stop_signals,
            pin_memory=ctx.device.type == "cuda", generator=torch.Generator().manual_seed(int(cfg.get("seed", 0))),
            persistent_workers=int(cfg.get("num_workers", 0)) > 0,  # epochs travel in the indices, not the workers
        )  # fmt: skip
        self.steps_per_epoch = len(self.sampler.inner) // self.batch_size // self.accum
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"{cfg['data']['train']}: {len(train_set)} training samples give no full optimizer step of "
                f"{self.batch_size} x accum_iter {self.accum} x {env.world_size} processes; lower batch_size or "
                f"accum_iter"
            )
        eff = effective_batch_size(self.batch_size, self.accum, env.world_size)
        self.lr = float(cfg["lr"]) if cfg.get("lr") else scaled_lr(float(cfg["blr"]), eff)
        log.info(
            "effective batch %d (%d x %d accum x %d processes), lr %.3g, %d steps/epoch",
            eff,
            self.batch_size,
            self.accum,
            env.world_size,
            self.lr,
            self.steps_per_epoch,
        )
        self.optimizer = build_optimizer(self.model, cfg, self.lr, ctx.device)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler("cuda", enabled=ctx.amp_dtype == torch.float16)
        self.ema = None
        if cfg.get("model_ema"):
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=float(cfg.get("model_ema_decay", 0.9999)))
        net = torch.compile(self.model) if cfg.get("compile") else self.model
        if env.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        self.net = net
        self.epoch = self.step = self.step_in_epoch = 0
        self._resume_rng = None

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state(self) -> dict:
        rngs = all_gather_objects(ckpt.rng_state())  # every rank's, so each resumes its own stream
        state = ckpt.training_state(
            self.model,
            self.optimizer,
            self.scaler,
            self.epoch,
            self.step,
            self.step_in_epoch,
            self.cfg,
            self.ema,
        )
        state["rng"] = rngs[0]
        state["rng_per_rank"] = rngs
        return state

    def save(self, name: str = ckpt.LAST) -> Path:
        state = self.state()
        path = self.ctx.output_dir / name
        if self.env.is_main:
            ckpt.save(state, self.ctx.output_dir, name)
        barrier()
        return path

    def resume(self) -> bool:
        """Continue from the last checkpoint in output_dir (if `resume` and one exists)."""
        path = ckpt.find_last(self.ctx.output_dir) if self.cfg.get("resume", True) else None
        if path is None:
            return False
        state = ckpt.load_training_state(path, "cpu")
        ckpt.check_resumable(state.get("config") or {}, self.cfg, path)
        ckpt.restore(state, self.model, self.optimizer, self.scaler, self.ema)
        self.epoch, self.step, self.step_in_epoch = (
            state["epoch"],
            state["step"],
            state.get("step_in_epoch", 0),
        )
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        self._resume_rng = per_rank[self.env.rank] if len(per_rank) == self.env.world_size else None
        log.info("resumed from %s: epoch %d, step %d", path, self.epoch, self.step)
        return True

    # -- the loop ----------------------------------------------------------------------------------------------
    def fit(self, on_epoch_end: Callable[[int], dict] | None = None) -> Path:
        cfg, epochs = self.cfg, int(self.cfg["epochs"])
        resumed = self.resume()
        seed_everything(int(cfg.get("seed", 0)) + self.env.rank)
        if self.epoch >= epochs and resumed:
            log.info("training already finished (%d epochs)", epochs)
            final = self.ctx.output_dir / ckpt.FINAL
            return final if final.exists() else self._finish()
        with ckpt.StopFlag() as stop:
            while self.epoch < epochs:
                started = time.time()
                loss = self._train_epoch(stop)
                self.epoch, self.step_in_epoch = self.epoch + 1, 0
                self.save()
                every = int(cfg.get("save_epoch_every") or 0)
                if every and self.epoch % every == 0:
                    self.save(f"checkpoint-epoch{self.epoch}.pth")
                scalars = {"epoch/train_loss": loss, "epoch/time_s": time.time() - started}
                if on_epoch_end is not None and self.epoch % int(cfg.get("eval_every", 1) or 1) == 0:
                    scalars.update(on_epoch_end(self.epoch - 1))
                self.ctx.tracker.log_metrics(scalars, step=self.epoch - 1)
        return self._finish()

    def _finish(self) -> Path:
        path = self.save(ckpt.FINAL)
        last = self.ctx.output_dir / ckpt.LAST
        if self.env.is_main and last.exists():
            last.unlink()
        barrier()
        return path

    def _train_epoch(self, stop: ckpt.StopFlag) -> float:
        """Train the rest of the current epoch; the mean loss of the batches it trained on."""
        cfg, env = self.cfg, self.env
        total = self.steps_per_epoch * self.accum
        first = self.step_in_epoch * self.accum
        self.sampler.set_epoch(self.epoch, skip=first * self.batch_size)
        self.net.train()
        batches = iter(self.loader)
        if self._resume_rng is not None:  # after iter(): the loader must not shift the restored streams
            ckpt.set_rng_state(self._resume_rng)
            self._resume_rng = None
        self.optimizer.zero_grad(set_to_none=True)
        log_every, save_every = int(cfg.get("log_every", 20) or 1), int(cfg.get("save_every_steps") or 0)
        window_loss, window_n, epoch_loss = 0.0, 0, 0.0
        bar = _progress(self.steps_per_epoch, self.step_in_epoch, f"epoch {self.epoch}", env.is_main)
        for micro in range(first, total):
            batch = next(batches)
            if micro % self.accum == 0:
                set_lr(
                    self.optimizer,
                    lr_at(
                        self.epoch + micro / total,
                        self.lr,
                        float(cfg.get("min_lr", 0.0)),
                        float(cfg["warmup_epochs"]),
                        float(cfg["epochs"]),
                    ),
                )
            boundary = (micro + 1) % self.accum == 0
            sync = contextlib.nullcontext() if boundary or not env.distributed else self.net.no_sync()
            with sync:
                with self.ctx.autocast():
                    loss = self.step_fn(self.net, batch)
                flags = all_reduce_sum(torch.stack([loss.detach().float(), torch.tensor(
                    float(stop.signum is not None), device=loss.device)]))  # fmt: skip
                loss_value = flags[0].item() / env.world_size
                if not math.isfinite(loss_value):
                    self._non_finite(loss_value, micro)
                self.scaler.scale(loss / self.accum).backward()
            window_loss, window_n, epoch_loss = (
                window_loss + loss_value,
                window_n + 1,
                epoch_loss + loss_value,
            )
            if not boundary:
                continue
            self.scaler.unscale_(self.optimizer)
            norm = None
            if cfg.get("clip_grad"):
                norm = torch.nn.utils.clip_grad_norm_(self.params, float(cfg["clip_grad"]))
            elif (self.step + 1) % log_every == 0:
                norm = grad_norm(self.params)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.step, self.step_in_epoch = self.step + 1, self.step_in_epoch + 1
            if self.ema is not None:
                self.ema.update(self.model, step=self.step)
            bar.update(1)
            if self.step % log_every == 0:
                self._log_step(window_loss / window_n, norm, bar)
                window_loss, window_n = 0.0, 0
            if save_every and self.step % save_every == 0:
                self.save()
            if flags[1].item() > 0:  # the all-reduced flag: every rank stops at the same step
                bar.close()
                path = self.save()
                raise ckpt.Preempted(stop.signum or 15, path)
        bar.close()
        return epoch_loss / max(total - first, 1)

    def _log_step(self, loss: float, norm, bar) -> None:
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        metrics = {"train/loss": loss, "train/lr": lr}
        if norm is not None:  # gradients are already averaged over the processes: the same norm everywhere
            metrics["train/grad_norm"] = float(norm)
        if self.scaler.is_enabled():
            metrics["train/loss_scale"] = float(self.scaler.get_scale())
        self.ctx.tracker.log_metrics(metrics, step=self.step)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
        if self.env.is_main:
            write_json(self.ctx.output_dir / "progress.json", {
                "epoch": self.epoch, "step": self.step, "step_in_epoch": self.step_in_epoch,
                "steps_per_epoch": self.steps_per_epoch, "epochs": int(self.cfg["epochs"]), "loss": loss, "lr": lr,
                "elapsed_s": round(time.time() - self.ctx.started, 1),
            })  # fmt: skip

    def _non_finite(self, value: float, micro: int) -> None:
        """Save the state of the last optimizer step if its weights are finite, then stop naming the step."""
        finite = all(torch.isfinite(p).all() for p in self.model.parameters())
        path = self.save() if finite else ckpt.find_last(self.ctx.output_dir)
        saved = f"last good checkpoint: {path} (step {self.step})" if finite else (
            f"the weights are no longer finite; last checkpoint on disk: {path}")  # fmt: skip
        raise NonFiniteLossError(
            f"loss is {value} at step {self.step} (epoch {self.epoch}, batch {micro} of the epoch); {saved}. "
            f"Lower the learning rate (blr / lr) or use precision: fp32, then resume or restart."
        )


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, desc: str, enabled: bool):
    """A tqdm bar on rank 0 (sparse refreshes when the output is a log file, not a terminal)."""
    if not enabled or os.environ.get("FER_NO_PROGRESS"):
        return _NoBar()
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total, initial=initial, desc=desc, mininterval=0.5 if tty else 60, dynamic_ncols=tty, leave=tty
    )
