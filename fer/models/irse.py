"""IR / IR-SE ResNet feature extractor of face.evoLVe, as APViT uses it (stages 1-3 of IR-50 at 112 px).

Layout and key names follow youqingxiaozhua/APViT `mmcls/models/backbones/irse.py` (itself from
ZhaoJ9014/face.evoLVe `model_irse.py`): `input_layer` (3x3 conv, BN, PReLU) and `body.S.U` units with a
`res_layer` (BN, 3x3 conv, PReLU, 3x3 conv with the stage stride, BN[, SE]) plus a `shortcut_layer`
(strided 1x1 max pool when the width is kept, else 1x1 conv + BN). APViT's RAF-DB config builds mode='ir',
i.e. *without* SE modules; `use_se=True` gives the IR-SE variant of face.evoLVe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn as nn

# Units per stage of face.evoLVe's IR-50 (the 4th stage is unused by APViT).
IR50_UNITS = (3, 4, 14, 3)
IR50_CHANNELS = (64, 128, 256, 512)


class SEModule(nn.Module):
    """Squeeze-excitation with bias-free 1x1 convs (face.evoLVe `SEModule`, keys fc1 / fc2)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * w


class BottleneckIR(nn.Module):
    """One IR unit; the stride sits on the second 3x3 conv as in face.evoLVe's `bottleneck_IR`."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, use_se: bool = False):
        super().__init__()
        if in_chs == out_chs:
            # kernel-1 max pool = strided subsampling; no parameters, as the reference
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs)
            )
        layers = [
            nn.BatchNorm2d(in_chs),
            nn.Conv2d(in_chs, out_chs, 3, 1, 1, bias=False),
            nn.PReLU(out_chs),
            nn.Conv2d(out_chs, out_chs, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_chs),
        ]
        if use_se:
            layers.append(SEModule(out_chs, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE(nn.Module):
    """IR(-SE) trunk returning the feature map of its last stage (stride 2 per stage, 8 for three stages).

    Args:
        stage_units: units per stage; APViT uses the first three stages of IR-50, (3, 4, 14).
        stage_channels: output width per stage.
        stem_channels: width of `input_layer` (64 in every face.evoLVe network).
        use_se: append SE modules to the residual branch (IR-SE); APViT's RAF-DB config does not.
    """

    def __init__(
        self,
        stage_units: Sequence[int] = IR50_UNITS[:3],
        stage_channels: Sequence[int] = IR50_CHANNELS[:3],
        stem_channels: int = 64,
        in_chans: int = 3,
        use_se: bool = False,
    ):
        super().__init__()
        if len(stage_units) != len(stage_channels) or not stage_units:
            raise ValueError(
                f"stage_units {stage_units} and stage_channels {stage_channels} must be equally long"
            )
        self.stage_units = tuple(stage_units)
        self.num_features = stage_channels[-1]
        self.reduction = 2 ** len(stage_units)
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_chans, stem_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.PReLU(stem_channels),
        )
        stages = []
        in_chs = stem_channels
        for units, out_chs in zip(stage_units, stage_channels):
            blocks = [BottleneckIR(in_chs, out_chs, 2, use_se)]
            blocks += [BottleneckIR(out_chs, out_chs, 1, use_se) for _ in range(units - 1)]
            stages.append(nn.Sequential(*blocks))
            in_chs = out_chs
        self.body = nn.ModuleList(stages)
        self._init_weights()

    def _init_weights(self) -> None:
        # the reference's `_initialize_weights`: xavier-uniform convs, unit BN; PReLU keeps 0.25
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        for stage in self.body:
            x = stage(x)
        return x


_FLAT_UNIT = re.compile(r"^body\.(\d+)\.(.*)$")


def remap_evolve_keys(
    state_dict: dict[str, torch.Tensor], stage_units: Sequence[int]
) -> dict[str, torch.Tensor]:
    """face.evoLVe IR checkpoints number units flat (`body.17.res_layer...`); ours nest them per stage.

    Units beyond `stage_units` (IR-50's 4th stage) and the face-recognition `output_layer` are dropped,
    as APViT's `IRSE.init_weights` effectively does (it loads with strict=False).
    """
    bounds = [sum(stage_units[: i + 1]) for i in range(len(stage_units))]
    out = {}
    for key, value in state_dict.items():
        match = _FLAT_UNIT.match(key)
        if match:
            index, rest = int(match.group(1)), match.group(2)
            stage = next((s for s, end in enumerate(bounds) if index < end), None)
            if stage is None:
                continue
            unit = index - (bounds[stage - 1] if stage else 0)
            out[f"body.{stage}.{unit}.{rest}"] = value
        elif key.startswith("input_layer."):
            out[key] = value
    return out
