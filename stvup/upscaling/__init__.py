"""One upscaling job and its streaming pipeline: from a weights file to a network (:mod:`.loader`), the windows over
the frames (:mod:`.pipeline`) with its tiles, ensemble, scene cuts, devices and speed settings, the decode, model and
encode threads (:mod:`.overlap`), resumable output in segments (:mod:`.resume`, :mod:`.journal`), one job
(:mod:`.job`) and the preview (:mod:`.comparison`).

The package imports nothing itself: :mod:`.shots` is used by training data on machines without PyAV.
"""
