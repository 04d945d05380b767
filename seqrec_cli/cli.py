"""The seqrec command line: registers the commands and turns user errors into one line.

Commands live in ``seqrec_cli.commands``; each parses its options, calls library code and
reports. Nothing here (or in the command modules at import time) imports torch, so ``--help``
stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from . import __version__, distributed
from .commands import download as download_cmd
from .commands import export as export_cmd
from .commands import infer as infer_cmd
from .commands import plot as plot_cmd
from .commands import preprocess as preprocess_cmd
from .commands import train as train_cmd
from .commands import tune as tune_cmd
from .console import keep_ctrl_c
from .errors import SeqrecError
from .threads import set_wait_policy

_debug = {"on": bool(os.environ.get("SEQREC_DEBUG"))}


class SeqrecGroup(TyperGroup):
    """The root group: catches SeqrecError (and OS errors, and Ctrl-C) once for every command."""

    def main(self, args=None, *rest, **kwargs):  # type: ignore[override]
        # the command line as given, so that --num-devices can run it again in each worker
        distributed.COMMAND_LINE[:] = list(sys.argv[1:] if args is None else args)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            result = super().invoke(ctx)
            distributed.leave_together()
            return result
        except (SeqrecError, OSError) as exc:
            msg = str(exc) if isinstance(exc, SeqrecError) else _os_error_text(exc)
            if distributed.under_torchrun():  # a worker: tell the launcher; it prints the run's one line
                show = distributed.record_failure(SeqrecError(msg) if isinstance(exc, OSError) else exc, True)
                msg = distributed.error_prefix() + msg
            else:
                show = True
            if _debug["on"]:
                raise
            if show:
                typer.echo(f"Error: {msg}", err=True)
            ctx.exit(1)
        except (typer.Exit, typer.Abort, typer.TyperException):  # the CLI's own exits and usage errors
            raise
        except EOFError as exc:  # click would print a bare "Aborted!" for it
            if _debug["on"]:
                traceback.print_exc()
            typer.echo(f"Error: an input ended before it was complete ({exc or 'EOFError'}); --debug shows where", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            if _debug["on"]:
                traceback.print_exc()
            if os.environ.get(distributed.ENV_LAUNCHED):  # a worker: the launcher says it once
                ctx.exit(130)
            typer.echo(
                "Error: interrupted; every file written so far is whole (a training run continues with --resume, "
                "a download resumes on the next run)",
                err=True,
            )
            ctx.exit(130)
        except Exception as exc:  # a bug, or a collective that lost another worker
            if not distributed.under_torchrun():
                raise
            show = distributed.record_failure(exc, False)
            if _debug["on"] or show:
                raise
            ctx.exit(1)


def _os_error_text(exc: OSError) -> str:
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return f"{where}{exc.strerror or exc}"


app = typer.Typer(
    cls=SeqrecGroup,
    name="seqrec",
    help=(
        "Sequential recommendation from the command line: download the standard data sets, "
        "preprocess them as the papers did, train BERT4Rec and GRU4Rec, evaluate honestly.\n\n"
        "Pipeline (each step writes files the next finds at default paths):\n\n"
        "  seqrec download ml-1m  ->  seqrec preprocess ml-1m  ->  seqrec train bert4rec  ->  seqrec infer"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seqrec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors (or set SEQREC_DEBUG=1).")
    ] = False,
) -> None:
    if debug:
        _debug["on"] = True


app.command("download", no_args_is_help=True)(download_cmd.download)
app.add_typer(preprocess_cmd.app, name="preprocess")
app.add_typer(train_cmd.pretrain_app, name="pretrain")
app.add_typer(train_cmd.train_app, name="train")
app.command("infer")(infer_cmd.infer)
app.command("evaluate")(infer_cmd.evaluate)
app.command("recommend")(infer_cmd.recommend)
app.command("plot")(plot_cmd.plot)
app.command("export")(export_cmd.export)
app.add_typer(tune_cmd.tune_app, name="tune")


def main() -> None:
    set_wait_policy()  # before anything imports torch
    keep_ctrl_c()  # a Ctrl-C that lands in a garbage-collection callback still stops the command
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
