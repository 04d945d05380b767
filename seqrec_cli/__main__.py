"""``python -m seqrec_cli ...``: the seqrec command line (also what torchrun starts)."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover - run as a module
    main()
