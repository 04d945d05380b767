"""seqrec download: placeholder until the download module lands."""

from __future__ import annotations

from typing import Annotated

import typer


def download(dataset: Annotated[str, typer.Argument(help="ml-1m or yoochoose")]) -> None:
    """Download a data set archive, verify it and extract it under data/raw/<name>/."""
    raise NotImplementedError
