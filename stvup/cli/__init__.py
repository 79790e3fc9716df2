"""The command line: the ``stvup`` command (:mod:`stvup.cli.main`) and its parts, a thin Click layer over the library.

``main`` (the console script) and ``cli`` (the Click group) live in :mod:`stvup.cli.main`. The package imports nothing
itself, and nothing below it imports PyAV at module level, so ``python -m stvup kit chunk`` runs where PyAV is missing.
"""
