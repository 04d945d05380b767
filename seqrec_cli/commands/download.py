"""seqrec download: fetch a raw data set archive, verify it, extract it under data/raw/<name>/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import human_bytes, say
from ..datasets import download as lib  # imports requests and py7zr only when they are used
from ..datasets.sources import SOURCES

_KNOWN = ", ".join(SOURCES)


def download(
    dataset: Annotated[
        str, typer.Argument(help=f"The data set to fetch: {_KNOWN}.", show_default=False, metavar="DATASET")
    ],
    dest: Annotated[
        Optional[Path],
        typer.Option(
            "--dest",
            help="Folder for the archive, the extracted files and SOURCE.json.",
            show_default="data/raw/<DATASET>",
        ),
    ] = None,
    url: Annotated[
        Optional[str],
        typer.Option("--url", help="Download from this mirror instead of the publisher's URL.", show_default=False),
    ] = None,
    checksum: Annotated[
        Optional[str],
        typer.Option(
            "--checksum",
            help=(
                "Expected checksum of the archive: MD5 (32 hex digits) or SHA-256 (64), optionally prefixed "
                "md5: or sha256:. Overrides the published one, e.g. for a mirror whose copy differs."
            ),
            show_default="the published one",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download and extract again even if a verified copy is in place.")
    ] = False,
    from_file: Annotated[
        Optional[Path],
        typer.Option(
            "--from-file",
            help="Import an archive fetched by other means (for offline machines) instead of downloading it.",
            show_default=False,
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            help=(
                "Retries after a connection error, a timeout or a server error (5xx); "
                "each resumes where the last stopped."
            ),
        ),
    ] = lib.DEFAULT_RETRIES,
    retry_wait: Annotated[
        float,
        typer.Option("--retry-wait", min=0.0, help="Seconds to wait before the first retry; doubles at each retry."),
    ] = lib.DEFAULT_RETRY_WAIT,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.001, help="Seconds to wait for the server to answer or to send more data."),
    ] = lib.DEFAULT_TIMEOUT,
) -> None:
    """Download a data set archive, verify its checksum and extract it under data/raw/<DATASET>/.

    An interrupted download resumes where it stopped. Nothing is extracted from an archive that
    fails verification, and SOURCE.json (written last) records where the archive came from and
    its checksums. Running it again when everything is in place does nothing.
    """
    result = lib.download(
        dataset,
        dest,
        url=url,
        checksum=checksum,
        force=force,
        from_file=from_file,
        retries=retries,
        retry_wait=retry_wait,
        timeout=timeout,
    )
    rec, src = result.record, result.source
    if result.skipped:
        say(
            f"{src.name} is already in {result.dest} ({src.archive} matches the sha256 in SOURCE.json); "
            "nothing to do (use --force to fetch it again)"
        )
        return

    if result.origin == "file":
        say(f"imported {from_file} as {result.archive} ({human_bytes(rec['bytes'])})")
    elif result.origin == "existing":
        say(f"kept {result.archive} already in place ({human_bytes(rec['bytes'])})")
    else:
        f = result.fetch
        resumed = f", resumed at {human_bytes(f.resumed_from)}" if f.resumed_from else ""
        say(
            f"downloaded {result.archive}: {human_bytes(f.fetched)} in {f.seconds:.1f} s"
            f" ({human_bytes(rec['bytes'])} in all{resumed})"
        )
    say(_verified_line(rec))
    stripped = f", folder {rec['archive_prefix_stripped']} flattened" if rec["archive_prefix_stripped"] else ""
    n = len(rec["extracted"])
    say(f"extracted {n} file{'s' if n != 1 else ''} to {result.dest}{stripped}: {result.dest / src.member}")
    say(f"wrote {result.dest / 'SOURCE.json'}")
    say(f"next: {src.next_step}")


def _verified_line(rec: dict) -> str:
    against, algos = rec["verified_against"], " and ".join(rec["verified_with"])
    if against in (lib.PUBLISHED, lib.USER):
        which = "the published checksum" if against == lib.PUBLISHED else "the checksum given with --checksum"
        return f"verified {algos} against {which} (sha256 {rec['sha256']})"
    if against == lib.CONTENT_LENGTH:
        return (
            f"verified the size ({rec['bytes']} bytes) against the server's Content-Length; no checksum is "
            f"published, recorded sha256 {rec['sha256']}"
        )
    return f"not verified: no checksum known (pass --checksum to check one); recorded sha256 {rec['sha256']}"
