"""Data sets: sources and downloads, raw-file preprocessing, and the processed data training reads."""

from __future__ import annotations

from pathlib import Path

from .. import formats
from ..console import note
from ..errors import MissingInputError


def load_training_data(dataset: str, train_dir: Path | None) -> tuple[formats.ProcessedData, Path]:
    """(the processed data to train on, its folder): ``train_dir``, or the default folder of
    ``dataset`` (``data/<dataset>``). The default ML-1M folder is made from the download first when
    it is missing (``seqrec preprocess ml-1m`` with its defaults)."""
    folder = Path(train_dir) if train_dir is not None else formats.processed_dir(dataset)
    if train_dir is None and dataset == formats.ML1M and not (folder / formats.MANIFEST_FILE).is_file():
        from .ml1m import preprocess_ml1m

        if not formats.ML1M_RATINGS.is_file():
            raise MissingInputError(folder, "seqrec download ml-1m", what="processed ML-1M data (and the raw download)")
        note(f"{folder} is missing: running the default preprocessing first (seqrec preprocess ml-1m)")
        r = preprocess_ml1m(formats.ML1M_RATINGS, folder, formats.vocab_path(formats.ML1M))
        note(f"ml-1m: {r.users:,} users, {r.items:,} items, {r.interactions:,} interactions")
    return formats.load_processed(folder), folder
