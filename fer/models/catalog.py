"""`fer models list`: every registered variant with its parameters and forward GFLOPs at its input size."""

from __future__ import annotations

import torch

from ._flops import flops_per_sample
from ._registry import create_model, list_models, model_entrypoint

# One sample's input, by the module that defines the family (the seeds' training resolutions).
_INPUT_SHAPES = {
    "fer.models.video_mae": (3, 16, 160, 160),
    "fer.models.apvit": (3, 112, 112),
}
_DEFAULT_SHAPE = (3, 224, 224)


def input_shape(name: str) -> tuple[int, ...]:
    shape = _INPUT_SHAPES.get(model_entrypoint(name).__module__, _DEFAULT_SHAPE)
    if name == "apvit_tiny":
        return (3, 64, 64)
    return shape


def describe(name: str, flops: bool = True) -> dict:
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = create_model(name)
    row = {
        "name": name,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "input": "x".join(str(s) for s in input_shape(name)[1:]),
    }
    if flops:
        try:
            row["gflops"] = flops_per_sample(model, input_shape(name)) / 1e9
        except RuntimeError:  # data-dependent masking (video MAE) needs real tensors: count on the CPU
            row["gflops"] = _flops_on_cpu(name)
    return row


def _flops_on_cpu(name: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *input_shape(name)))
    return counter.get_total_flops() / 1e9


def model_table(flops: bool = True, names: list[str] | None = None) -> str:
    rows = [describe(name, flops) for name in (names or list_models())]
    header = f"{'name':<52} {'params (M)':>10} {'input':>12}" + (f" {'GFLOPs':>9}" if flops else "")
    lines = [header, "-" * len(header)]
    for r in rows:
        line = f"{r['name']:<52} {r['params_m']:>10.2f} {r['input']:>12}"
        lines.append(line + (f" {r['gflops']:>9.1f}" if flops else ""))
    by_name = {r["name"]: r for r in rows}
    lgi, vit = by_name.get("vit_base_dim512_no_depth_patch16_160"), by_name.get("vit_base_patch16_160")
    if flops and lgi and vit:
        saving = 1 - lgi["gflops"] / vit["gflops"]
        lines.append(
            f"\nLGI-Former finetuning needs {100 * saving:.0f}% fewer FLOPs than VideoMAE ViT-B at 16x160x160 "
            f"({lgi['gflops']:.1f} vs {vit['gflops']:.1f} GFLOPs; the MAE-DFER paper reports about 38%)."
        )
    lines.append(
        "GFLOPs: one forward pass of one sample, multiply and add counted separately (FlopCounterMode)."
    )
    return "\n".join(lines)
