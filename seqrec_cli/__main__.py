"""``python -m seqrec_cli``: the seqrec command line (how torchrun starts each worker)."""

from .cli import main

main()
