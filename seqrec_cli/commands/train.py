"""seqrec pretrain / train (placeholder until the model issues land)."""

from __future__ import annotations

import typer

from ..errors import SeqrecError

train_app = typer.Typer(help="Train a model (bert4rec or gru4rec) on processed data.", no_args_is_help=True)
pretrain_app = typer.Typer(help="Masked-item pretraining (bert4rec).", no_args_is_help=True)


@train_app.command("gru4rec")
def train_gru4rec() -> None:
    """Train GRU4Rec (not yet implemented)."""
    raise SeqrecError("train gru4rec is not yet implemented")


@train_app.command("bert4rec")
def train_bert4rec() -> None:
    """Train BERT4Rec (not yet implemented)."""
    raise SeqrecError("train bert4rec is not yet implemented")


@pretrain_app.command("bert4rec")
def pretrain_bert4rec() -> None:
    """Pretrain BERT4Rec (not yet implemented)."""
    raise SeqrecError("pretrain bert4rec is not yet implemented")
