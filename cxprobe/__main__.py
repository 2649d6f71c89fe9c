"""``python -m cxprobe`` is the ``cxprobe`` command."""

from cxprobe.cli import main

main()
