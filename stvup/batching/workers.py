"""The pool of ``stvup batch --ray``: the actor that holds one model and runs parts on a node of the cluster, and
the driver's view of what each actor is doing.

:mod:`stvup.batching.distributed` plans the parts and :mod:`stvup.batching.dispatch` hands them out; the classes here
are what it hands them to.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = ["MAX_RESTARTS", "Worker", "Workers", "actor_class"]

_MAX_REST = 30.0  # seconds, the longest a restarting worker is left alone before it is tried again
MAX_RESTARTS = 2  # times Ray brings a lost worker back before it is lost for good


class Worker:
    """One model on one GPU or CPU core; runs parts. Defined as a Ray actor class by :func:`actor_class`."""

    def __init__(self, state: dict, model: tuple[str, str], options: dict[str, Any], threads: int | None) -> None:
        """``model``: the variant's name and its flow (:func:`stvup.model.weights.weights_flow`)."""
        import torch

        from stvup.model import build_model
        from stvup.model.weights import flow_override, load_weights
        from stvup.upscaling.pipeline import Upscaler

        if threads is not None:
            torch.set_num_threads(threads)
        name, flow = model
        net = build_model(name, **flow_override(flow))
        load_weights(net, state)
        self.upscaler = Upscaler(net, **options)

    def ping(self) -> bool:
        """Answers once the actor is up: after a death, whether Ray brought it back or it is gone for good."""
        return True

    def describe(self) -> dict[str, Any]:
        """What the pipeline is here: its fingerprint (for the journal), precision, device and spatial factor."""
        up = self.upscaler
        return {"fingerprint": up.fingerprint(), "precision": up.precision, "device": str(up.device), "space": up.space}

    def run_part(self, key: tuple[int, int], src: str, options: Any, work: str, suffix: str, segment_frames: int,
                 begin: int, stop: int | None, rate_out: Fraction, writer_options: dict, deint: Any, info: Any,
                 progress: Any) -> dict[str, Any]:  # fmt: skip
        """Makes output frames ``[begin, stop)`` of ``src`` as segments in ``work``, as ``options`` (the batch's
        :class:`~stvup.upscaling.options.UpscaleOptions`) say; returns them and what it saw."""
        from stvup.upscaling.reading import Reading, open_frames
        from stvup.upscaling.resume import SegmentSink

        span, scene_threshold = options.span(), options.scene_threshold
        records: list[dict[str, Any]] = []
        sink = SegmentSink(Path(work), suffix, segment_frames, begin, writer_options, records.append)
        cuts: list[tuple[int, float]] = []
        seen = [0]
        made = 0
        try:
            # The driver's info: already probed and adjusted for deinterlacing. A part that starts inside the video
            # seeks to the key frame before it, with the margin that makes its frames equal a whole run's.
            frames = open_frames(src, info, deint, options.folder_fps, span, begin, rate_out)
            if span is not None and span.duration is not None:
                ends = span.output_frames(rate_out)
                stop = ends if stop is None else min(stop, ends)
            with frames as stream:
                rate_in = info.rate  # the driver's: as the network gets the frames (field rate: twice the source's)
                reading = Reading(rate_in, Fraction(begin) / rate_out if span is None else Fraction(0), span)
                count = info.frame_count and round(info.frame_count * rate_out / rate_in)
                end = stop if stop is not None else count  # this part's last output frame (None: unknown)
                self.upscaler.plan_compile(end and max(end - begin, 0), stream.info.height, stream.info.width,
                                           rate_out / rate_in)  # fmt: skip

                def cut(i: int, t: Fraction) -> None:
                    # Each part reports the cuts of its own output; the driver joins them.
                    if (entry := reading.cut(i, t)) is not None:
                        cuts.append(entry)

                outputs = self.upscaler.stream(reading.pairs(stream), rate_in, rate_out,
                                               lambda i: seen.__setitem__(0, i + 1), scene_threshold=scene_threshold,
                                               skip=begin, stop=stop, on_cut=cut)  # fmt: skip
                for out in outputs:
                    sink.write(out.image)
                    made += 1
                    if made % 4 == 0:
                        progress.put_nowait((key, made))
                sink.finish()
                problems, concealed = list(stream.problems), stream.concealed
                problems += [f"part from output frame {begin}: {stream.seek_note}"] if stream.seek_note else []
                decoded, frames_in = stream.decoded, reading.frames_in(seen[0])
        except BaseException:
            sink.abort()
            raise
        progress.put_nowait((key, made))
        return {"segments": records, "cuts": cuts, "problems": problems, "concealed": concealed,
                "frames_in": frames_in, "decoded": decoded, "compiled": self.upscaler.compiled}  # fmt: skip


def actor_class(ray: Any, gpu: bool) -> Any:
    """:class:`Worker` as a Ray actor class: one GPU (or one CPU core) each, restarted when its process is lost."""
    resources = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": 1}
    return ray.remote(max_restarts=MAX_RESTARTS, **resources)(Worker)


class Workers:
    """The pool's actors and what each is doing when it is not running a part.

    A worker whose part failed with an error goes back to work at once. One that answered "temporarily
    unavailable" is being restarted (its process or machine was lost): it rests, backing off, instead of burning
    parts' tries in a fraction of a second. One whose part died with it is asked to answer a ping: Ray either
    restarts it (the ping answers, and it goes back to work) or has given up on it (``max_restarts`` used up, or
    killed for good), and then it is lost and gets no more parts.
    """

    def __init__(self, ray: Any, actors: list[Any]) -> None:
        self.ray = ray
        self.idle = list(actors)
        self.size = len(actors)
        self.resting: dict[Any, float] = {}  # actor -> when it may take work again
        self.rests: dict[Any, int] = {}  # actor -> rests since its last answer
        self.checking: dict[Any, Any] = {}  # ping ref -> actor
        self.lost = 0

    def wake(self) -> None:
        now = time.monotonic()
        for actor, until in list(self.resting.items()):
            if until <= now:
                del self.resting[actor]
                self.idle.append(actor)

    def answered(self, actor: Any) -> None:
        self.rests.pop(actor, None)
        self.idle.append(actor)

    def unavailable(self, actor: Any) -> None:
        self.rests[actor] = self.rests.get(actor, 0) + 1
        self.resting[actor] = time.monotonic() + min(_MAX_REST, 0.25 * 2 ** self.rests[actor])

    def died(self, actor: Any) -> None:
        self.checking[actor.ping.remote()] = actor

    def settle(self, ref: Any) -> None:
        """The answer to a ping."""
        actor = self.checking.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.ActorUnavailableError:
            self.unavailable(actor)
        except self.ray.exceptions.RayError:
            self.lost += 1
        else:
            self.answered(actor)

    def all_lost(self) -> bool:
        return not (self.idle or self.resting or self.checking)
