"""The `fer` command: recipes in --help, the model zoo table."""

import subprocess
import sys

import pytest

from fer.cli import main


def fer(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "fer.cli", *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_help_lists_the_recipes_of_all_four_seeds(command):
    out = fer(command, "--help")
    for recipe in ("mae_sfer_vit_base_pretrain", "mae_dfer_finetune_dfew", "fmae_iat_bp4d", "apvit_raf"):
        assert recipe in out


def test_models_list_prints_params_and_flops(capsys):
    main(["models", "list", "vit_tiny_patch16", "apvit_tiny"])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:4]}
    assert float(rows["vit_tiny_patch16"][0]) == pytest.approx(5.72, abs=0.01)
    assert rows["vit_tiny_patch16"][1] == "224x224" and float(rows["vit_tiny_patch16"][2]) > 1
    assert "apvit_tiny" in rows


def test_set_overrides_nest_and_parse_yaml():
    from fer.cli import _overrides

    assert _overrides(["model_kwargs.img_size=64", "blr=1e-3", "mixup=0"]) == {
        "model_kwargs": {"img_size": 64},
        "blr": 1e-3,
        "mixup": 0,
    }
    with pytest.raises(SystemExit, match="key=value"):
        _overrides(["epochs"])
