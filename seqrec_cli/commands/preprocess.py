"""seqrec preprocess: raw files -> the processed format that train and infer read."""

from __future__ import annotations

import typer

from . import preprocess_rsc15

app = typer.Typer(
    help="Prepare data exactly as the papers did: ml-1m (leave-one-out), yoochoose (RSC15 rules), sample.",
    no_args_is_help=True,
)

preprocess_rsc15.register(app)
