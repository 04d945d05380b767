"""The CLI shell: version, help on every command and option, light start-up, usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from conftest import REPO, invoke

from seqrec_cli import __version__, cli
from seqrec_cli.cli import app
from seqrec_cli.errors import MissingInputError


def _walk(cmd, path=()):
    """(path, command) for the root and every command and subcommand below it."""
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = list(_walk(ROOT))
COMMAND_IDS = [" ".join(path) or "seqrec" for path, _ in COMMANDS]


def test_version(runner):
    result = invoke(runner, "--version")
    assert result.exit_code == 0, result.output
    assert result.output == f"seqrec {__version__}\n"


def test_the_command_tree_is_complete():
    """The walk below sees every command the pipeline needs (guards against an empty walk)."""
    names = set(COMMAND_IDS)
    for expected in ("download", "preprocess", "preprocess ml-1m", "preprocess sample", "train", "infer"):
        assert expected in names, sorted(names)
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_has_help(runner, path, cmd):
    result = invoke(runner, *path, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: seqrec {' '.join(path)}".rstrip() + " ")
    assert "Traceback" not in result.output
    assert (cmd.help or "").strip(), f"{COMMAND_IDS[COMMANDS.index((path, cmd))]} has no help text"
    ctx = typer.Context(cmd, info_name=path[-1] if path else "seqrec")
    help_option = cmd.get_help_option(ctx)
    for param in cmd.get_params(ctx):
        if param is help_option:
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{' '.join(path)}: {param.name} has no help text"
        if getattr(param, "hidden", False):
            continue  # deliberately hidden (e.g. an option that does not apply to this stage)
        for opt in getattr(param, "opts", []):
            if opt.startswith("-"):
                assert opt in result.output, f"{opt} missing from the help of {' '.join(path)}"


def test_short_help_flag(runner):
    result = invoke(runner, "preprocess", "ml-1m", "-h")
    assert result.exit_code == 0
    assert "--min-item-count" in result.output


def test_no_arguments_shows_help(runner):
    result = invoke(runner)
    assert "Usage: seqrec" in result.output
    assert "preprocess" in result.output
    assert result.exit_code in (0, 2)  # click's no_args_is_help exits 2 in 8.2+, 0 before
    assert "Traceback" not in result.output


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_help_does_not_import_torch():
    """`seqrec --help` (and the help of every command) stays light: no torch at start-up."""
    code = (
        "import sys\n"
        "import typer\n"
        "from seqrec_cli.cli import app\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "def walk(cmd, path=()):\n"
        "    yield path\n"
        "    for name, sub in getattr(cmd, 'commands', {}).items():\n"
        "        yield from walk(sub, (*path, name))\n"
        "for path in walk(typer.main.get_command(app)):\n"
        "    try:\n"
        "        app([*path, '--help'], prog_name='seqrec')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (path, exc.code)\n"
        "    leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "    assert not leaked, ('torch imported by --help of', path)\n"
        "print('ok')\n"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("ok")


def test_console_script_help():
    """The installed entry point works as a program, not only through CliRunner."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from seqrec_cli.cli import main; sys.argv = ['seqrec', '--help']; main()"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: seqrec ")
    assert proc.stderr == ""


@pytest.mark.parametrize("args", [("bogus",), ("preprocess", "bogus"), ("train", "nosuchmodel")], ids=" ".join)
def test_unknown_command_is_a_usage_error(runner, args):
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"No such command '{args[-1]}'" in result.output


def test_unknown_option_is_a_usage_error(runner):
    result = invoke(runner, "preprocess", "ml-1m", "--no-such-option")
    assert result.exit_code == 2, result.output
    assert "No such option" in result.output and "--no-such-option" in result.output
    assert "Traceback" not in result.output


def test_user_error_is_one_line_and_debug_shows_the_exception(runner, workdir, monkeypatch):
    result = invoke(runner, "preprocess", "ml-1m", "--input", "missing.dat")
    assert result.exit_code == 1
    assert result.output == "Error: ratings file not found: missing.dat\n"
    monkeypatch.setitem(cli._debug, "on", False)  # --debug flips module state: restore it afterwards
    result = invoke(runner, "--debug", "preprocess", "ml-1m", "--input", "missing.dat")
    assert isinstance(result.exception, MissingInputError)
    assert "Error:" not in result.output


def test_step_progress_never_passes_100_percent(capsys):
    """Session-parallel step counts are estimates: an epoch that takes more (or fewer) steps than
    announced must still end on its real count at 100 %, never '100.1% 11575/11559'."""
    from seqrec_cli.console import Tracker

    with Tracker("epoch 1/1", 5, kind="steps", log_every_steps=2) as t:
        for _ in range(7):
            t.advance(1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("epoch 1/1: 100.0% 7/7")
    assert all("%" not in line or float(line.split("%")[0].split()[-1]) <= 100.0 for line in lines)

    with Tracker("epoch 1/1", 10, kind="steps", log_every_steps=100) as t:
        for _ in range(8):
            t.advance(1)
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("epoch 1/1: 100.0% 8/8")
