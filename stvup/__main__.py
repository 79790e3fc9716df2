"""``python -m stvup``: the ``stvup`` command without an installed entry point (how the GPU kit runs remotely)."""

from stvup.cli.main import main

main()
