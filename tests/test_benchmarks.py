"""Benchmark scripts: each runs with --tiny in a subprocess and prints its table (shape checked, never timings);
the helpers they rest on (batch search, peak table, device-side augmentation) checked against known answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import largest_fitting, markdown_table, peak_bf16_tflops, worker_counts  # noqa: E402
from benchmarks.data_loading import (  # noqa: E402
    crop_resize,
    image_pretrain_on_device,
    video_pretrain_on_device,
)

MODEL_COLUMNS = [
    "workload", "mode", "batch", "samples/s", "speed-up", "MFU", "GFLOP/sample", "peak mem GiB", "max batch",
    "steps", "skipped steps", "inf/nan grad norms", "syncs/step", "graph breaks", "warm-up s",
]  # fmt: skip


def _run(script: str, *args: str, tmp_path: Path) -> tuple[str, Path]:
    md = tmp_path / "RESULTS.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--tiny", *args, "--markdown", str(md)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, md


def _table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert set("".join(cells[1])) <= {"-"}, "second table line must be the separator"
    return cells[0], cells[2:]


def _header_ok(text: str, script: str) -> None:
    for key in ("device", "date", "commit", "command"):
        assert re.search(rf"^- {key}: \S", text, re.M), f"header line {key!r} missing"
    assert f"python benchmarks/{script} --tiny" in text


@pytest.mark.slow  # runs the script end to end (~30 s on 2 cores)
def test_model_steps_tiny_prints_one_row_per_workload_and_mode(tmp_path):
    out, md = _run("model_steps.py", "--steps", "2", "--warmup", "1", tmp_path=tmp_path)
    columns, rows = _table(out)
    assert columns == MODEL_COLUMNS
    assert len(rows) == 8  # 4 workloads x (seed, fast)
    assert all(len(r) == len(columns) for r in rows)
    assert [r[1] for r in rows] == ["seed", "fast"] * 4
    assert len({r[0] for r in rows}) == 4 and all(rows[i][0] == rows[i + 1][0] for i in (0, 2, 4, 6))
    for r in rows:
        row = dict(zip(columns, r))
        assert float(row["samples/s"].replace(",", "")) > 0
        assert re.fullmatch(r"\d+\.\d\dx", row["speed-up"])
        assert float(row["GFLOP/sample"]) > 0
        assert row["steps"] == "3"  # 1 warm-up + 2 timed (no sync-count step on the CPU)
        assert int(row["skipped steps"]) >= 0 and int(row["inf/nan grad norms"]) >= 0
        assert row["MFU"] == row["peak mem GiB"] == row["max batch"] == row["syncs/step"] == "-"  # CPU
    assert {r[4] for r in rows[::2]} == {"1.00x"}  # seed mode is the baseline of its workload
    # the two modes of a workload count the same model FLOPs
    assert all(rows[i][6] == rows[i + 1][6] for i in (0, 2, 4, 6))
    _header_ok(out, "model_steps.py")
    text = md.read_text()
    assert text.count("### Model steps") == 1 and _table(text) == (columns, rows)


@pytest.mark.slow  # runs the script end to end (~40 s on 2 cores)
def test_data_loading_tiny_prints_one_row_per_pipeline(tmp_path):
    out, md = _run("data_loading.py", "--seconds", "0.05", "--workers", "1", "2", "--device", "cpu",
                   tmp_path=tmp_path)  # fmt: skip
    columns, rows = _table(out)
    assert columns == ["pipeline", "source", "batch", "1 worker", "2 workers"]
    assert len(rows) == 12  # 9 CPU pipelines + 3 device-side ones (here on the CPU)
    assert all(len(r) == len(columns) for r in rows)
    names = [r[0] for r in rows]
    for pipeline in ("image pretrain", "image finetune", "video pretrain", "video finetune"):
        assert any("packed" in r[1] for r in rows if r[0] == pipeline), f"{pipeline}: no packed row"
        assert pipeline in names
    assert sum("augment on cpu" in r[1] for r in rows) == 3
    for r in rows:
        assert all(float(c.replace(",", "")) > 0 for c in r[3:])
    _header_ok(out, "data_loading.py")
    assert _table(md.read_text()) == (columns, rows)


# ------------------------------------------------------------------------------------------------ helpers


def test_largest_fitting_finds_the_limit_within_tolerance():
    probes = []

    def fits(n):
        probes.append(n)
        return n <= 1000

    found = largest_fitting(fits, start=32, limit=4096)
    assert 1000 * (1 - 0.125) <= found <= 1000
    assert len(probes) <= 10
    assert largest_fitting(lambda n: n <= 5, start=32, limit=4096) == 5  # the start itself does not fit
    assert largest_fitting(lambda n: True, start=32, limit=100) == 100  # capped
    assert largest_fitting(lambda n: False, start=4, limit=100) == 0
    with pytest.raises(ValueError):
        largest_fitting(lambda n: True, start=8, limit=4)


def test_peak_table_matches_device_names():
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("NVIDIA H100 NVL") == 835.0
    assert peak_bf16_tflops("NVIDIA H200") == 989.0
    assert peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_bf16_tflops("Tesla V100-SXM2-32GB") is None


def test_worker_counts_and_table_shape():
    assert worker_counts(16) == [1, 2, 4, 8, 16]
    assert worker_counts(12) == [1, 2, 4, 8, 12]
    assert worker_counts(1) == [1]
    with pytest.raises(ValueError, match="3 columns"):
        markdown_table(["a", "b", "c"], [[1, 2]])


def _normalised(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_crop_resize_box_conventions(mode):
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    full = torch.tensor([[0, 0, 16, 16]] * 2)
    none, both = torch.zeros(2, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
    torch.testing.assert_close(crop_resize(x, full, none, 16, mode), _normalised(x), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        crop_resize(x, full, both, 16, mode), _normalised(x).flip(-1), atol=1e-4, rtol=0
    )
    box = torch.tensor([[2, 4, 8, 8], [5, 1, 8, 8]])  # (top, left, height, width)
    crops = torch.stack([x[0, :, 2:10, 4:12], x[1, :, 5:13, 1:9]])
    torch.testing.assert_close(crop_resize(x, box, none, 8, mode), _normalised(crops), atol=1e-4, rtol=0)


def test_device_augmentation_reproduces_the_cpu_transforms():
    """Same RNG draws -> the same crop (and flip) as the CPU transforms; only the resampling kernels differ."""
    from fer.data import image_pretrain_transform
    from fer.data.transforms import VideoPretrainTransform

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:112, 0:112]
    face = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(
        np.uint8
    )  # smooth gradients: kernels barely matter
    face = (face + rng.integers(0, 8, face.shape)).astype(np.uint8)
    clip = np.stack([np.roll(face, 3 * t, axis=1) for t in range(4)])
    for seed in range(3):
        torch.manual_seed(seed)
        cpu = image_pretrain_transform(224)(Image.fromarray(face))
        torch.manual_seed(seed)
        dev = image_pretrain_on_device(torch.from_numpy(face).permute(2, 0, 1)[None])[0]
        torch.manual_seed(seed + 100)
        other = image_pretrain_on_device(torch.from_numpy(face).permute(2, 0, 1)[None])[0]
        assert dev.shape == cpu.shape == (3, 224, 224)
        assert (cpu - dev).abs().mean() < 0.03 < 0.2 < (cpu - other).abs().mean()

        torch.manual_seed(seed)
        cpu = VideoPretrainTransform(160)(clip)
        torch.manual_seed(seed)
        dev = video_pretrain_on_device(torch.from_numpy(clip)[None])[0]
        assert dev.shape == cpu.shape == (3, 4, 160, 160)
        assert (cpu - dev).abs().mean() < 0.02


# ------------------------------------------------------------------------------------------------ the two modes


def _tiny_run(mode: str, log_every: int = 2):
    from benchmarks.model_steps import BY_KEY, Run, input_pool, pool_batch, workload_cfg

    cpu = torch.device("cpu")
    cfg = workload_cfg(BY_KEY["mae_pretrain"], 4, True, mode, cpu)
    run = Run(cfg, mode, cpu, compile_model=False, log_every=log_every)
    pool = input_pool(cfg, 8, cpu)
    return run, pool, pool_batch


def test_modes_build_what_they_claim():
    seed, _, _ = _tiny_run("seed")
    fast, _, _ = _tiny_run("fast")
    assert seed.amp_dtype == torch.float16 and seed.scaler.is_enabled()
    assert fast.amp_dtype == torch.bfloat16 and not fast.scaler.is_enabled()
    attn = [m.fused_attn for m in seed.model.modules() if hasattr(m, "fused_attn")]
    assert attn and not any(attn)  # explicit softmax attention everywhere
    assert all(m.fused_attn for m in fast.model.modules() if hasattr(m, "fused_attn"))
    assert all(not g["foreach"] and not g["fused"] for g in seed.opt.param_groups)
    assert [p.data_ptr() for p in seed.params] != [p.data_ptr() for p in fast.params]
    for a, b in zip(seed.model.parameters(), fast.model.parameters()):  # the same initial weights
        torch.testing.assert_close(a, b)


def test_fast_mode_reads_the_host_only_at_the_logging_step():
    run, pool, pool_batch = _tiny_run("fast", log_every=3)
    run.step(pool_batch(pool, 4, 0))
    with torch.no_grad():
        run.model.decoder_pred.weight.fill_(float("nan"))  # every later loss and gradient is NaN
    run.step(pool_batch(pool, 4, 1))  # step 2: not a logging step, so nothing is read and nothing raised
    assert run.nonfinite == 0 and int(run._bad) == 1  # counted on the device
    from benchmarks.model_steps import NonFiniteLoss

    with pytest.raises(NonFiniteLoss, match="up to 3"):
        run.step(pool_batch(pool, 4, 2))  # step 3 logs: the mean loss is read and found NaN
    assert run.nonfinite == 2


def test_seed_mode_counts_skipped_fp16_steps():
    run, pool, pool_batch = _tiny_run("seed")
    run.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)  # scaled fp16 gradients overflow
    before = [p.detach().clone() for p in run.params]
    run.step(pool_batch(pool, 4, 0))
    # the update is skipped and the norm of the overflowed gradients is what the seeds log: "grad_norm: inf"
    assert run.skipped == 1 and run.nonfinite == 1
    assert all(torch.equal(a, p) for a, p in zip(before, run.params))
    run.scaler = torch.amp.GradScaler("cpu")
    run.step(pool_batch(pool, 4, 1))
    assert run.skipped == 1 and run.nonfinite == 1 and run.steps == 2
    assert not all(torch.equal(a, p) for a, p in zip(before, run.params))


def test_batch_probe_runs_steps_at_each_size():
    run, pool, _ = _tiny_run("seed")
    sizes = []

    def fits(n):
        sizes.append(n)
        return run.fits(pool, n)

    assert largest_fitting(fits, 2, 8) == 8  # nothing runs out of memory on the CPU: capped at the limit
    assert sizes == [2, 4, 8] and run.steps == 3


# ------------------------------------------------------------------------------------------------ activation checkpointing


def _block_calls(model) -> list[int]:
    calls = [0]
    for block in [*model.blocks, *getattr(model, "decoder_blocks", [])]:
        # pre-hooks: the recomputation stops as soon as it has what backward needs, before forward hooks run
        block.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize(
    "name, kwargs, args",
    [
        ("vit_base_patch16", dict(num_classes=3, drop_path_rate=0.2), ()),
        ("mae_vit_base_patch16", dict(decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2), (0.75,)),
    ],
)
def test_grad_checkpointing_recomputes_blocks_with_the_same_gradients(name, kwargs, args):
    from fer.models import create_model

    small = dict(img_size=32, embed_dim=32, depth=2, num_heads=2, **kwargs)
    x = torch.randn(2, 3, 32, 32)
    grads, calls = [], []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = create_model(name, **small, grad_checkpointing=checkpointed).train()
        counter = _block_calls(model)
        torch.manual_seed(1)  # same drop-path draws and MAE masks in both runs
        out = model(x, *args)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
        calls.append(counter[0])
        with torch.no_grad():  # no autograd: no recomputation
            counter[0] = 0
            model(x, *args)
            assert counter[0] == len(model.blocks) + len(getattr(model, "decoder_blocks", []))
    assert calls[1] == 2 * calls[0]  # every block ran again in the backward pass
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-4, atol=1e-6)
    model.set_grad_checkpointing(False)
    assert model.grad_checkpointing is False
