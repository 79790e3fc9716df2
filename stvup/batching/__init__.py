"""Many videos at once: ``stvup batch`` in one process (:mod:`.folder`) or spread over Ray (:mod:`.distributed`, with
its loop in :mod:`.dispatch` and its actors in :mod:`.workers`); :mod:`.inputs` holds what both share.

The package imports nothing itself (Ray is an optional extra).
"""
