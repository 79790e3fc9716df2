"""Training: the loop (:mod:`.loop`), each method's and stage's step (:mod:`.steps`), the losses (:mod:`.losses`),
stage 0's flow pre-training (:mod:`.flowtrain`), runs and their checkpoints (:mod:`.runs`) and the moving average of
the weights (:mod:`.ema`). The batches come from :mod:`stvup.data`.

The package imports nothing itself, and nothing here imports PyAV: the GPU training kit trains where it is missing.
"""
