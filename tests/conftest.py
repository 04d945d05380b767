"""Shared fixtures: a CLI runner and a scratch working folder so default paths land in tmp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

# tiny test models run fastest on one thread, and threads that share a busy 2-core machine must
# sleep rather than spin (the thread policy of seqrec_cli/threads.py); set before torch loads
os.environ.setdefault("SEQREC_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from seqrec_cli import kernels  # noqa: E402
from seqrec_cli.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file from ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run the test from an empty folder, as a user would run seqrec from their project folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(runner: CliRunner, *args: str):
    """Invoke the real CLI with string arguments; returns click's Result."""
    return runner.invoke(app, [str(a) for a in args])


def listing(folder: Path) -> list[str]:
    """Every file under a folder, relative, sorted: to assert nothing half-written is left."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


os.environ.setdefault("COLUMNS", "200")


def usage_error(result, option: str, *choices: str) -> str:
    """A usage error (exit 2, before any work) about ``option`` that lists the allowed ``choices``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert f"Invalid value for '{option}'" in text, text
    for choice in choices:
        assert f"'{choice}'" in text, (choice, text)
    return text


@pytest.fixture
def use_numba(monkeypatch):
    """use_numba(True / False): switch the compiled kernels on or off (SEQREC_NUMBA) for what
    follows (seqrec_cli/kernels.py); afterwards the choice is forgotten, so later tests see the default again."""

    def switch(on: bool) -> None:
        monkeypatch.setenv(kernels.ENV, "1" if on else "0")
        kernels.compiled.cache_clear()

    yield switch
    kernels.compiled.cache_clear()
