"""`fer ...`: every stage of the workflow as a command, for use outside Snakemake."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml


def _recipe_epilog() -> str:
    from fer.engine.recipes import list_recipes

    lines = ["recipes (from the seeds' command lines; see fer/recipes.yaml):"]
    lines += [f"  {name:<40} {kind}" for name, kind in list_recipes()]
    return "\n".join(lines)


def _overrides(pairs: list[str]) -> dict:
    """--set key=value (value parsed as YAML; dotted keys nest: model_kwargs.img_size=64)."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _parse_value(value)
    return out


def _parse_value(text: str):
    value = yaml.safe_load(text)
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def cmd_demo_data(args) -> None:
    from fer.datasets.demo import generate_demo

    for name, path in generate_demo(Path(args.out), seed=args.seed).items():
        print(f"{name}: {path}")


def cmd_prepare(args) -> None:
    from fer.datasets.records import prepare_records

    records = prepare_records(args.family, args.root, args.out)
    print(f"{len(records)} records -> {args.out}")


def cmd_faces(args) -> None:
    from fer.datasets.records import read_records
    from fer.faces import align_records, summarize

    manifest = align_records(
        read_records(args.records),
        Path(args.out),
        backend=args.backend,
        size=args.size,
        workers=args.workers,
        device=args.device,
    )
    print(summarize(manifest))


def cmd_annotate(args) -> None:
    from fer.data.annotations import write_fold_annotations

    summary = write_fold_annotations(args.family, args.records, args.manifest, args.fold, args.out)
    print(json.dumps(summary["splits"], indent=2))


def _engine_cfg(args) -> dict:
    from fer.engine.recipes import resolve

    cfg = resolve(args.recipe, _overrides(args.set))
    cfg["output_dir"] = str(Path(args.output_dir).resolve())
    cfg["device"] = args.device
    cfg["resume"] = args.resume
    return cfg


def cmd_pretrain(args) -> None:
    from fer.engine import pretrain

    cfg = _engine_cfg(args)
    cfg["data"] = {"train": [str(Path(p).resolve()) for p in args.data]}
    print(pretrain(cfg))


def cmd_finetune(args) -> None:
    from fer.engine import finetune

    cfg = _engine_cfg(args)
    cfg["data"] = {"train": args.train, "val": args.val or args.test, "test": args.test}
    cfg["pretrained"] = args.pretrained
    cfg["seed"] = args.seed
    if args.classes:
        cfg["classes"] = args.classes.split(",")
    if args.aus:
        cfg["aus"] = [int(a) for a in args.aus.split(",")]
    metrics = finetune(cfg)
    print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, indent=2))


def cmd_evaluate(args) -> None:
    from fer.engine import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.test, device=args.device)
    print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, indent=2))


def cmd_models_list(args) -> None:
    from fer.models.catalog import model_table

    print(model_table(flops=not args.no_flops, names=args.names or None))


def cmd_report(args) -> None:
    from fer.report import write_experiment_table

    table = write_experiment_table(args.name, args.metrics, args.out + ".md", args.out + ".csv")
    print(table.to_string(index=False))


# ---- predict (issue 10): fer.predict on your own images and videos --------------------------------------------
def cmd_predict(args) -> None:
    from fer.predict import PredictError, predict

    try:
        result = predict(args.inputs, args.checkpoint, out_dir=args.out, device=args.device, model=args.model,
                         classes=args.classes, recipe=args.recipe, sampling_rate=args.sampling_rate,
                         batch_size=args.batch_size, face_size=args.face_size, face_backend=args.face_backend,
                         max_faces=args.max_faces, clip_hop=args.clip_hop, max_gap=args.max_gap,
                         annotate=not args.no_annotate, model_kwargs=_overrides(args.model_kwarg) or None)  # fmt: skip
    except PredictError as err:
        raise SystemExit(f"fer predict: {err}") from None
    print(result.summary)
    print(f"{len(result.rows)} rows -> {result.csv}")


def add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="expressions / AUs of the faces in images and videos, with pictures")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
    p.add_argument("--checkpoint", required=True, help="ours (checkpoint-final.pth) or a released one")
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--model", help="architecture of a released checkpoint (see `fer models list`)")
    p.add_argument("--recipe", help="recipe whose model_kwargs and preprocessing it follows")
    p.add_argument("--model-kwarg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--classes", help="class names a,b,c or a dataset (rafdb, affectnet7, dfew, bp4d, ...)")
    p.add_argument("--sampling-rate", type=int, help="frames between clip frames (video models)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--face-size", type=int, default=112, help="aligned face size of the faces stage (112)")
    p.add_argument("--face-backend", default="mtcnn", choices=["mtcnn", "face_alignment"])
    p.add_argument("--max-faces", type=int, help="at most this many faces per image / frame")
    p.add_argument("--clip-hop", type=int, help="frames between clip windows (default: half a window)")
    p.add_argument("--max-gap", type=int, default=2, help="missed frames a face track bridges (default 2)")
    p.add_argument("--no-annotate", action="store_true", help="predictions.csv only: no pictures")
    p.set_defaults(func=cmd_predict)


# ---- end of predict --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="generate the miniature demo datasets (RAF-DB, DFEW, BP4D layouts)")
    p.add_argument("--out", default="data/demo")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("prepare", help="verify a dataset root and write its records table")
    p.add_argument("family")
    p.add_argument("root")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("faces", help="detect, landmark and align faces of a records table")
    p.add_argument("records")
    p.add_argument("--out", required=True)
    p.add_argument("--backend", default="mtcnn", choices=["mtcnn", "face_alignment"])
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_faces)

    p = sub.add_parser("annotate", help="write one fold's train/val/test annotation files")
    p.add_argument("family")
    p.add_argument("records")
    p.add_argument("manifest")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_annotate)

    formatter = argparse.RawDescriptionHelpFormatter
    for name, func, helptext in (
        ("pretrain", cmd_pretrain, "self-supervised pretraining from a named recipe"),
        ("finetune", cmd_finetune, "finetune and evaluate from a named recipe"),
    ):
        p = sub.add_parser(name, help=helptext, epilog=_recipe_epilog(), formatter_class=formatter)
        p.add_argument("--recipe", required=True)
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value"
        )
        p.add_argument("--output-dir", required=True)
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument(
            "--resume", action="store_true", help="continue from the last checkpoint in --output-dir"
        )
        if name == "pretrain":
            p.add_argument("--data", nargs="+", required=True, help="pretraining lists ('path 0' lines)")
        else:
            p.add_argument("--train", required=True)
            p.add_argument("--val")
            p.add_argument("--test", required=True)
            p.add_argument("--pretrained")
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--classes", help="comma-separated class names (expression tasks)")
            p.add_argument("--aus", help="comma-separated AU numbers (AU tasks)")
        p.set_defaults(func=func)

    p = sub.add_parser("evaluate", help="evaluate a finetuned checkpoint on an annotation file")
    p.add_argument("checkpoint")
    p.add_argument("--test", required=True)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("models", help="the model zoo")
    models_sub = p.add_subparsers(dest="models_command", required=True)
    q = models_sub.add_parser("list", help="name, parameters and GFLOPs of every registered model")
    q.add_argument("names", nargs="*")
    q.add_argument("--no-flops", action="store_true")
    q.set_defaults(func=cmd_models_list)

    p = sub.add_parser("report", help="table of per-fold metrics.json files")
    p.add_argument("name")
    p.add_argument("metrics", nargs="+")
    p.add_argument("--out", required=True, help="output path without extension (.md and .csv are written)")
    p.set_defaults(func=cmd_report)

    add_predict_parser(sub)  # issue 10
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
