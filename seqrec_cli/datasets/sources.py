"""Where the raw data sets come from: URL, archive, published checksums, what the pipeline reads.

One explicit registry (``SOURCES``), read by ``seqrec download``. Checksums are the ones the
publishers give (docs/protocols.md §1); YOOCHOOSE publishes none, so its download is checked
against the size the server announces and its SHA-256 is recorded in SOURCE.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SeqrecError

EXTRACT_KINDS = ("zip", "7z")


@dataclass(frozen=True)
class Source:
    """One downloadable raw data set."""

    name: str  # registry key, also the folder name under data/raw/
    url: str  # the publisher's URL (a mirror can be given with --url)
    archive: str  # file name the archive is saved under, in data/raw/<name>/
    md5: str | None  # published MD5 (lower-case hex), None when none is published
    sha256: str | None  # published SHA-256 (lower-case hex), None when none is published
    kind: str  # how to extract: "zip" (zipfile) or "7z" (py7zr)
    member: str  # the file the pipeline reads, relative to data/raw/<name>/ after extraction: the only one extracted
    description: str  # one line for help texts and messages
    next_step: str  # the command to run after the download
    max_bytes: int = 4 << 30  # the largest ``member`` can be (about 10x the real one); a larger declared size is refused

    @property
    def has_checksum(self) -> bool:
        return bool(self.md5 or self.sha256)


SOURCES: dict[str, Source] = {
    "ml-1m": Source(
        name="ml-1m",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        archive="ml-1m.zip",
        md5="c4d9eecfca2ab87c1945afe126590906",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        kind="zip",
        member="ml-1m/ratings.dat",
        max_bytes=256 << 20,  # the real ratings.dat: 24.6 MB
        description="MovieLens 1M: 1,000,209 ratings of 3,706 movies by 6,040 users (5.9 MB zip)",
        next_step="seqrec preprocess ml-1m",
    ),
    "ml-100k": Source(
        name="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        archive="ml-100k.zip",
        md5="0e33842e24a9c977be4e0107933c0723",  # GroupLens' published MD5 (ml-100k.zip.md5)
        sha256=None,
        kind="zip",
        member="ml-100k/u.data",
        description="MovieLens 100K: 100,000 ratings of 1,682 movies by 943 users (4.9 MB zip)",
        next_step="seqrec preprocess ml-100k",
        max_bytes=64 << 20,  # the real u.data: 2.0 MB
    ),
    "ml-20m": Source(
        name="ml-20m",
        url="https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        archive="ml-20m.zip",
        md5="cd245b17a1ae2cc31bb14903e1204af3",  # GroupLens' published MD5 (ml-20m.zip.md5)
        sha256=None,
        kind="zip",
        member="ml-20m/ratings.csv",
        description="MovieLens 20M: 20,000,263 ratings of 26,744 movies by 138,493 users (190 MB zip)",
        next_step="seqrec preprocess ml-20m",
        max_bytes=8 << 30,  # the real ratings.csv: 533 MB
    ),
    "yoochoose": Source(
        name="yoochoose",
        url="https://s3-eu-west-1.amazonaws.com/yc-rdata/yoochoose-data.7z",
        archive="yoochoose-data.7z",
        md5=None,  # none published: the size is checked against Content-Length, SHA-256 recorded
        sha256=None,
        kind="7z",
        member="yoochoose-clicks.dat",
        max_bytes=16 << 30,  # the real yoochoose-clicks.dat: 1.49 GB
        description="YOOCHOOSE (RecSys Challenge 2015): ~33M clicks in ~9M sessions (several hundred MB 7z)",
        next_step="seqrec preprocess yoochoose",
    ),
}


def get_source(name: str) -> Source:
    """The registry entry for ``name``; an unknown name is a user error listing the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(SOURCES)
        raise SeqrecError(f"unknown data set {name!r}; known data sets: {known}") from None
