"""Video input and output: probe and decode videos or frame folders, encode results atomically.

See :mod:`stvup.video.reader` and :mod:`stvup.video.writer` for the decisions behind rates, timestamps, colour,
rotation and damaged input; :mod:`~stvup.video.rates`, :mod:`~stvup.video.color`, :mod:`~stvup.video.encoding`
and :mod:`~stvup.video.partial` hold the rules themselves; :mod:`~stvup.video.frames` reads frame folders and
:mod:`~stvup.video.info` holds the types that reading returns.
"""

from stvup.video.reader import (
    FRAME_EXTENSIONS,
    DecodedFrame,
    FrameStream,
    VideoInfo,
    iter_frames,
    list_frame_files,
    probe,
)
from stvup.video.writer import INPUT_EXTENSIONS, VIDEO_EXTENSIONS, FrameFolderWriter, VideoWriter, open_writer

__all__ = [
    "FRAME_EXTENSIONS",
    "INPUT_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DecodedFrame",
    "FrameFolderWriter",
    "FrameStream",
    "VideoInfo",
    "VideoWriter",
    "iter_frames",
    "list_frame_files",
    "open_writer",
    "probe",
]
