"""Quality and speed: the evaluation protocols with their scores and reports (:mod:`.protocol`), the methods they
compare (:mod:`.methods`), PSNR and SSIM (:mod:`.metrics`) and ``stvup bench`` (:mod:`.bench`).

The package imports nothing itself.
"""
