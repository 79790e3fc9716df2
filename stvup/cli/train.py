"""``stvup train``: option parsing over :mod:`stvup.training.loop` and :mod:`stvup.training.runs` (registered on the
main group by :mod:`stvup.cli.main`)."""

from __future__ import annotations

import click
from click.core import ParameterSource

from stvup.data.degrade import KERNELS

from .output import progress_bar

__all__ = ["train"]


def _crf_range(ctx, param, value):
    """``23`` or ``18-35`` → (low, high)."""
    if value is None:
        return None
    try:
        low, _, high = value.partition("-")
        return (int(low), int(high or low))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a CRF or CRF range like 18-35") from None


def _stride(ctx, param, value):
    if value == "auto":
        return None
    try:
        strides = sorted({int(part) for part in value.split(",")})
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither auto nor whole numbers like 2 or 2,4") from None
    if strides[0] < 2:
        raise click.BadParameter("every stride must be at least 2")
    return strides[0] if len(strides) == 1 else tuple(strides)


@click.command()
@click.argument("data", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="runs/stvun-small",
    show_default=True,
    help="Run folder: log.jsonl, checkpoints/, last.pt, model.safetensors. A resumed run stays in its own folder.",
)
@click.option("--model", "model_name", default="stvun-small", help="STVUN variant to train (see `stvup info`).")
@click.option(
    "--method",
    type=click.Choice(["stvun", "two-stream"]),
    default="stvun",
    show_default=True,
    help="stvun: the joint network. two-stream: f_S and f_T in two streams with cross-stream consistency.",
)
@click.option("--spatial", default="espcn", show_default=True, help="Two-stream spatial module: espcn or vdsr.")
@click.option("--temporal", default="dvf", show_default=True, help="Two-stream temporal module: dvf or slomo.")
@click.option(
    "--lambda",
    "lambda_c",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight λ of the consistency loss L_C. Default: 4 for two-stream, 0 (off) for stvun; 0 for two-stream is "
    "the baseline without L_C.",
)
@click.option(
    "--labeled-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Two-stream: keep HR ground truth for this share of the footage; the rest only feeds L_C.",
)
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(exists=True),
    help="Two-stream: folder or video of low-resolution footage used as is for L_C only (repeatable).",
)
@click.option(
    "--unlabeled-batch",
    type=click.IntRange(min=0),
    default=None,
    help="Unlabeled pairs added to each step's L_C. Default: the batch size.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Start from these weights instead of random ones.",
)
@click.option(
    "--resume",
    type=click.Path(exists=True),
    default=None,
    help="Continue a run (its folder, or a checkpoint file) with its saved settings and footage; only DATA, --out, "
    "--device, --threads, --precision, --minutes, stage lengths of unfinished stages and logging may be given.",
)
@click.option(
    "--flow-steps",
    type=click.IntRange(min=0),
    default=0,
    help="Stage 0 steps: PWC-Net alone learns motion without labels (SSIM + L1 photometric loss, smoothness, "
    "occlusion check).",
)
@click.option("--flow-lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, help="Stage 0 learning rate.")
@click.option("--flow-patch", type=click.IntRange(min=16), default=64, help="Stage 0 LR patch size.")
@click.option(
    "--flow-smooth", type=click.FloatRange(min=0), default=0.5, help="Weight of stage 0's edge-aware smoothness."
)
@click.option(
    "--flow-reset", is_flag=True, help="Start PWC-Net from random weights (zero flow) even when --init gave it some."
)
@click.option(
    "--freeze-flow",
    is_flag=True,
    help="Stage 2 leaves PWC-Net as --init or stage 0 left it and trains the encoder, EFST and decoder only.",
)
@click.option(
    "--flow",
    default="pwc",
    show_default=True,
    metavar="pwc|dis-PRESET-xK",
    help="The network's optical flow: its own PWC-Net, or a classical one with no weights (e.g. dis-medium-x2; "
    "stvup.model.flow), which the rest then learns to use. The weights file records it.",
)
@click.option(
    "--ema",
    "ema_decay",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Keep an exponential moving average of the weights with this decay per step (e.g. 0.999: about the last "
    "1,000 steps) and write it as the run's weights; checkpoints keep both. Default: the last step's weights.",
)
@click.option(
    "--pretrain-steps",
    type=click.IntRange(min=0),
    default=300_000,
    help="Stage 1 steps: encoder, EFST and decoder on L_S only (two-stream: f_S and f_T on their own tasks).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=0),
    default=400_000,
    help="Stage 2 steps: the whole network on λ_M·L_M + λ_S·L_S + λ_F·L_F (two-stream: L_R + λ·L_C).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Samples per step.")
@click.option("--patch", type=click.IntRange(min=16), default=32, help="Stage 1 LR patch size (HR = ×scale).")
@click.option("--patch2", type=click.IntRange(min=16), default=64, help="Stage 2 LR patch size.")
@click.option("--lr", type=float, default=1e-4, help="Stage 1 initial learning rate (Adam).")
@click.option("--lr2", type=float, default=5e-5, help="Stage 2 initial learning rate.")
@click.option(
    "--lr-halve-every",
    type=click.IntRange(min=1),
    default=100_000,
    help="Halve the learning rate every this many steps of a stage.",
)
@click.option("--lambda-m", type=float, default=1.0, help="Weight of L_M (LR intermediate frame, Eq. 7).")
@click.option("--lambda-s", type=float, default=1.0, help="Weight of L_S (HR centre frame, Eq. 9).")
@click.option("--lambda-f", type=float, default=1.0, help="Weight of L_F (HR intermediate frames, Eq. 11).")
@click.option(
    "--stride",
    default="2",
    callback=_stride,
    help="Source frames between LR inputs (2: one time target at T=0.5; 4: 0.25, 0.5, 0.75), several (2,4: each "
    "batch draws one, training ×2 and ×4 time), or auto (by frame rate).",
)
@click.option("--max-times", type=click.IntRange(min=1), default=3, help="Most time targets per sample.")
@click.option(
    "--degradation",
    "kernel",
    type=click.Choice(KERNELS),
    default="duf",
    help="Downsampling: the paper's Gaussian (duf); antialiased bicubic, area, lanczos or bilinear on the block-centre "
    "grid of real video; mixed (duf or bicubic); or real: the real-video mix (a random one of the four, mild blur, "
    "sensor noise, H.264 or MPEG-2, 4:2:0 chroma), whose strengths below apply unless given.",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=None,
    help="Largest noise σ (8-bit levels) added to LR inputs. Default: 0; 4 with --degradation real.",
)
@click.option(
    "--crf",
    default=None,
    callback=_crf_range,
    help="H.264 compression of LR inputs, e.g. 18-35. Default: none; 15-35 with --degradation real.",
)
@click.option(
    "--degrade-probability",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of samples that get noise/compression. Default: 1; 0.8 with --degradation real.",
)
@click.option(
    "--blur",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of samples mildly blurred (σ 0.3-1 HR px) before the reduction. Default: 0; 0.25 with real.",
)
@click.option(
    "--mpeg2",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of compressed samples that go through MPEG-2 (as DVDs) instead of H.264. Default: 0; 0.15 with real.",
)
@click.option(
    "--photos",
    multiple=True,
    type=click.Path(exists=True),
    help="Still photographs (files or folders, repeatable): each sample from one is seven frames cut along a random "
    "camera path (sub-pixel pan, slow zoom, small roll, shake).",
)
@click.option(
    "--photo-share",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Share of the samples cut from photographs. Default: 0.3 with --photos, else 0.",
)
@click.option(
    "--prescale",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Reduce photographs and 720p-and-up footage by a random factor up to this one before cutting a patch, so "
    "the targets have real footage's detail levels (e.g. 2).",
)
@click.option("--no-augment", is_flag=True, help="No flips, rotations or reversed order.")
@click.option("--max-frames", type=click.IntRange(min=7), default=None, help="Decode at most this many per source.")
@click.option("--seed", type=int, default=0, help="Seed of the sample sequence.")
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    help="auto: bf16 autocast where the hardware has it (CUDA, CPU with AMX/AVX-512 BF16).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for PyTorch.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1000, help="Steps between checkpoints.")
@click.option("--log-every", type=click.IntRange(min=1), default=10, help="Steps between log lines.")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many minutes of training in this call, with a checkpoint and model.safetensors written as "
    "at the end; --resume continues. Default: run to the last step.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(
    data,
    out_dir,
    model_name,
    method,
    spatial,
    temporal,
    lambda_c,
    labeled_fraction,
    unlabeled,
    unlabeled_batch,
    init,
    resume,
    flow_steps,
    flow_lr,
    flow_patch,
    flow_smooth,
    flow_reset,
    freeze_flow,
    flow,
    ema_decay,
    pretrain_steps,
    steps,
    batch_size,
    patch,
    patch2,
    lr,
    lr2,
    lr_halve_every,
    lambda_m,
    lambda_s,
    lambda_f,
    stride,
    max_times,
    kernel,
    noise,
    crf,
    degrade_probability,
    blur,
    mpeg2,
    photos,
    photo_share,
    prescale,
    no_augment,
    max_frames,
    seed,
    device,
    precision,
    threads,
    checkpoint_every,
    log_every,
    minutes,
    quiet,
) -> None:
    """Train STVUN (or the two-stream network) on videos and frame folders in DATA (recursive; vid4 and the selection
    set's held-out clips are refused), and on photographs (--photos)."""
    from stvup.data.degrade import REAL_VIDEO, Degradation
    from stvup.training.loop import train as run_training
    from stvup.training.runs import TrainConfig, load_training_checkpoint, resume_config

    mix = REAL_VIDEO if kernel == "real" else Degradation(kernel)  # the strengths an option left unsaid takes
    noise, crf = mix.noise if noise is None else noise, mix.crf if crf is None else crf
    degrade_probability = mix.probability if degrade_probability is None else degrade_probability
    blur, mpeg2 = mix.blur if blur is None else blur, mix.mpeg2 if mpeg2 is None else mpeg2

    values = dict(
        data=list(data), out_dir=out_dir, model=model_name, method=method, spatial=spatial, temporal=temporal,
        lambda_c=lambda_c, labeled_fraction=labeled_fraction, unlabeled=list(unlabeled),
        unlabeled_batch=unlabeled_batch, init=init, flow_steps=flow_steps, flow_lr=flow_lr, flow_patch=flow_patch,
        flow_smooth=flow_smooth, flow_reset=flow_reset, freeze_flow=freeze_flow, flow=flow, ema_decay=ema_decay,
        pretrain_steps=pretrain_steps, steps=steps,
        batch_size=batch_size, patch=patch, patch2=patch2, lr=lr, lr2=lr2, lr_halve_every=lr_halve_every,
        lambda_m=lambda_m, lambda_s=lambda_s, lambda_f=lambda_f, stride=stride, max_times=max_times, kernel=kernel,
        noise=noise, crf=crf, degrade_probability=degrade_probability, blur=blur, mpeg2=mpeg2,
        chroma=mix.chroma, augment=not no_augment, photos=list(photos),
        photo_share=(0.3 if photos else 0.0) if photo_share is None else photo_share, prescale=prescale,
        max_frames=max_frames, seed=seed, device=device, precision=precision, threads=threads,
        checkpoint_every=checkpoint_every, log_every=log_every,
    )  # fmt: skip
    if resume is None:
        if not data:
            raise click.UsageError("give the footage to train on (DATA), or --resume a run")
        config = TrainConfig(**values)
    else:  # only what the command line names changes; the run's saved settings supply the rest
        ctx = click.get_current_context()
        names = {"model_name": "model", "no_augment": "augment"}
        given = [names.get(p, p) for p in ctx.params if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE]
        changes = {k: values[k] for k in given if k in values}
        resume = load_training_checkpoint(resume)  # read once: for the settings here, the weights in train()
        config = resume_config(resume, **changes)
    bar = progress_bar(quiet, "stage {task.fields[stage]}", ("{task.fields[losses]}", "{task.fields[rate]} samples/s"))
    state: dict = {}

    def progress(p) -> None:
        if "task" not in state:
            state["task"] = bar.add_task("train", total=p.total, stage=p.stage, losses="", rate="-")
        losses = " ".join(f"{k}={v:.4f}" for k, v in p.losses.items() if k != "loss" and v)
        bar.update(state["task"], completed=p.step, stage=p.stage, losses=losses, rate=f"{p.samples_per_s:.1f}")

    def message(text: str) -> None:
        if not quiet:
            bar.console.print(text)

    with bar:
        result = run_training(config, resume=resume, on_progress=progress, on_message=message,
                              time_limit=minutes * 60 if minutes else None)  # fmt: skip
    click.echo(
        f"trained {result.steps} steps in {result.seconds / 60:.1f} min on {result.clips} clips "
        f"({result.windows} windows); weights: {result.weights}"
    )
    if not result.finished:
        click.echo(f"stopped at the time limit, step {result.steps} of {config.total_steps}; continue with "
                   f"--resume {result.out_dir}")  # fmt: skip
