"""The GPU training kit: turn a session on a lent GPU machine into weights (README, "Training on a GPU").

The machine is reached only through a tool that copies at most 64 MiB of the working tree there, runs one command
of at most 10 minutes, keeps the machine warm for a short while between commands, and brings back at most 8 files
of 16 MB. It has PyTorch, OpenCV and NumPy but not PyAV. So the kit has three parts:

* :mod:`stvup.kit.pack`: here, real training footage becomes a small *data pack* of H.264 segments (decoded there
  with OpenCV) with a manifest and checksums, plus the run's settings (``train.json``);
* :mod:`stvup.kit.chunk`: there, one command trains for a fixed number of minutes, resuming the run folder the
  previous command left on the machine (or starting from weights carried in), and writes the weights to the
  output folder in checksummed shards;
* :mod:`stvup.kit.shards`: here, the shards are joined and checked into one ``.safetensors`` file.

``python -m stvup kit ...`` runs the commands without installing stvup, which is how the GPU machine runs them.
The package imports nothing itself: ``stvup kit --help`` stays fast, and the pack side (PyAV) and the training side
(PyTorch) load only where they run.
"""
