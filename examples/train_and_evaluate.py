"""Train a model on a folder of videos, then score it with the paper's protocol against bicubic + blending.

python examples/train_and_evaluate.py TRAIN_DIR TEST_CLIP --out runs/example --model stvun-small --steps 200

Training reads every video and frame folder under TRAIN_DIR; TEST_CLIP (a high-resolution video or frame folder)
is degraded and upsampled ×4 in space and ×2 in time. With tiny settings this runs in seconds and shows the API;
the shipped default weights came from `stvup train` with the settings in weights/README.md.
"""

from __future__ import annotations

import argparse

import stvup
from stvup.upscaling.pipeline import Upscaler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_dir")
    parser.add_argument("test_clip")
    parser.add_argument("--out", default="runs/example")
    parser.add_argument("--model", default="stvun-small")
    parser.add_argument("--steps", type=int, default=200, help="steps of each stage")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--patch", type=int, default=32, help="LR patch size")
    args = parser.parse_args(argv)

    config = stvup.TrainConfig(
        data=[args.train_dir], out_dir=args.out, model=args.model, pretrain_steps=args.steps, steps=args.steps,
        batch_size=args.batch_size, patch=args.patch, patch2=args.patch, lr=2e-4, lr2=1e-4,
    )  # fmt: skip
    # Progress arrives through a callback: the library never prints.
    result = stvup.train(config, on_progress=lambda p: print(f"step {p.step}/{p.total} {p.losses}", end="\r"))
    print(f"\nweights: {result.weights} ({result.steps} steps, {result.seconds:.0f} s)")

    model = stvup.load_weights(stvup.build_model(args.model), result.weights)
    report = stvup.evaluate([args.test_clip], methods=["stvup", "bicubic"], upscaler=Upscaler(model, device="cpu"))
    print(report.to_markdown())


if __name__ == "__main__":
    main()
