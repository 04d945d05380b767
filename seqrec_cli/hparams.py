"""One declaration per hyperparameter: typed dataclass fields, from which options and files derive.

Every hyperparameter of a model or of its training is one dataclass field declared with
:func:`hp`: its type (``int``, ``float``, ``bool``, ``str`` or a ``Literal`` of choices), its
default, a one-line help text with its unit or reason, and its range. From that single
declaration seqrec derives

* the command-line option (:func:`typer_parameters`: name, type, choices, help, default);
* the checks applied to every value, whatever its source (:func:`check_value`): the command
  line, a ``--params`` file, a ``--config`` file or a checkpoint's ``config.json``;
* the typed config read back from a JSON object (:func:`from_json`).

A typo in a choice is a usage error before any data is read (Typer checks ``Literal`` types);
a value out of range is one ``Error:`` line naming the option or the file and key.

This module imports neither torch nor numpy: the CLI builds its commands from these
declarations at start-up.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from .errors import BadInputError, SeqrecError

SEED_MAX = 2**32 - 1  # numpy's and torch's generators both take seeds in 0 .. 2**32 - 1
# predictions scored at once by evaluate / infer / recommend and by validation: the [batch x items]
# score matrix of 128 rows stays in a 2-core CPU's cache while it is ranked (yoochoose 1/64: 6.0 s at
# 128 against 11.1 s at 512; ML-1M BERT4Rec 4.4 s against 6.1 s; docs/benchmarks.md, evaluation time)
EVAL_BATCH_SIZE = 128
FLOAT32_MAX = 3.4028234663852886e38  # the largest 32-bit float: torch's parameters and rates are float32


def hp(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    flag: str | None = None,
    arch: bool = True,
    panel: str | None = None,
    legacy: Any = None,
) -> Any:
    """Declare a hyperparameter field.

    default: the default value; help: one line, with the unit or the reason for the default;
    min/max: the allowed range (inclusive, or exclusive with ``min_open``/``max_open``);
    flag: the option name when it differs from ``--field-name``; arch: for model configs, whether
    the field belongs to the architecture (fixed by ``--init-from``) or to the loss; legacy: for a
    field added after checkpoints were written, the value those checkpoints (whose config lacks the
    key) were trained with, which :func:`from_json` fills in (None: the key is required).
    """
    meta = {"help": help, "min": min, "max": max, "min_open": min_open, "max_open": max_open, "flag": flag}
    meta.update({"arch": arch, "panel": panel, "legacy": legacy})
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Param:
    """What one declared field says about itself."""

    name: str  # the dataclass field
    kind: str  # int | float | bool | str | choice
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    flag: str = ""  # --option-name
    arch: bool = True
    panel: str | None = None
    legacy: Any = None  # the value of a checkpoint written before the field existed (None: required)

    @property
    def key(self) -> str:
        """The name used in --params files: the option name with underscores."""
        return self.flag[2:].replace("-", "_")

    def describe(self) -> str:
        """What a valid value is, for messages: 'an integer from 0 to 10', 'one of a, b'..."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "str":
            return "a string"
        noun = "an integer" if self.kind == "int" else "a number"
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            if self.kind == "int":
                return f"{noun} from {_num(lo)} to {_num(hi)}"
            return f"{noun} in {'(' if self.min_open else '['}{_num(lo)}, {_num(hi)}{')' if self.max_open else ']'}"
        if lo is not None:
            if self.kind == "int" and lo == 1:
                return "a positive integer"
            if self.kind == "int" and lo == 0:
                return "a non-negative integer"
            return f"{noun} {'>' if self.min_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"{noun} {'<' if self.max_open else '<='} {_num(hi)}"
        return "a finite number" if self.kind == "float" else noun


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def params_of(cls: type) -> list[Param]:
    """The declared fields of a config dataclass, in order (fields without :func:`hp` metadata,
    such as ``n_items``, which comes from the data, are left out)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        tp = hints[f.name]
        choices: tuple[str, ...] = ()
        if get_origin(tp) is Literal:
            kind, choices = "choice", tuple(get_args(tp))
        elif tp is bool:
            kind = "bool"
        elif tp is int:
            kind = "int"
        elif tp is float:
            kind = "float"
        elif tp is str:
            kind = "str"
        else:  # pragma: no cover - a declaration error, caught by the tests of every config
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported hyperparameter type {tp!r}")
        m = f.metadata
        out.append(
            Param(
                f.name, kind, f.default, m["help"], choices, m["min"], m["max"], m["min_open"], m["max_open"],
                m["flag"] or "--" + f.name.replace("_", "-"), m["arch"], m["panel"], m.get("legacy"),
            )  # fmt: skip
        )
    return out


def check_value(p: Param, value: Any, where: str) -> Any:
    """The value if it fits the declaration, else :class:`SeqrecError` ``<where> must be <describe()>,
    got <value>``. ``where`` names the option (``--seed``) or the file and key (``p.json: seed``).
    Integers are accepted for floats (and returned as floats); booleans are never numbers."""
    ok, given = True, value
    if p.kind == "bool":
        ok = isinstance(value, bool)
    elif p.kind == "choice":
        ok = isinstance(value, str) and value in p.choices
    elif p.kind == "str":
        ok = isinstance(value, str)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        ok = False
    elif p.kind == "int":
        ok = isinstance(value, int)
    else:
        ok = math.isfinite(value)
        value = float(value)
    if ok and p.kind in ("int", "float"):
        if p.min is not None:
            ok = value > p.min if p.min_open else value >= p.min
        if ok and p.max is not None:
            ok = value < p.max if p.max_open else value <= p.max
    if not ok:
        raise SeqrecError(f"{where} must be {p.describe()}, got {shown(given)}")
    if p.kind == "float" and abs(value) > FLOAT32_MAX:  # torch computes in 32-bit floats
        raise SeqrecError(f"{where} must be {p.describe()} and at most 3.4e+38 (the largest 32-bit float), got {shown(given)}")
    return value


def shown(value: Any) -> str:
    """A value as the user wrote it, for messages: JSON's ``true``/``false``/``null`` and lists as
    JSON (not Python's ``True``/``None``), strings quoted, numbers as they are (a whole float
    without its ``.0``: the command line hands ``--dropout 1`` over as 1.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if value is None or isinstance(value, (bool, list, dict)):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            pass
    return repr(value)


def check_config(cfg: Any, where: str = "config") -> None:
    """Check every declared field of a config instance (e.g. one built in Python or read back)."""
    for p in params_of(type(cfg)):
        check_value(p, getattr(cfg, p.name), f"{where}: {p.name}")


def from_json(cls: type, body: Any, source: Path | str, extra: Mapping[str, Any] | None = None, *, partial=False) -> Any:
    """A config instance from a JSON object (e.g. a checkpoint's ``model_config``).

    Every declared field must be present (unless ``partial``: then defaults fill in; a field
    declared with ``legacy`` may be absent: a checkpoint from before it existed gets that value), of its
    type and in range; unknown keys are refused. ``extra`` supplies undeclared fields such as
    ``n_items`` (which must then be in ``body`` too, and is checked to be an integer >= 1).
    Errors name the file and the key.
    """
    if not isinstance(body, dict):
        raise BadInputError(source, f"expected a JSON object for {cls.__name__}, got {type(body).__name__}")
    declared = {p.name: p for p in params_of(cls)}
    other = [f.name for f in dataclasses.fields(cls) if f.name not in declared]
    unknown = sorted(set(body) - set(declared) - set(other))
    if unknown:
        raise BadInputError(source, f"unknown key(s): {', '.join(unknown)}")
    values: dict[str, Any] = dict(extra or {})
    for name in other:
        if name in body:
            v = body[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadInputError(source, f"{name} must be a positive integer, got {shown(v)}")
            values[name] = v
        elif name not in values:
            raise BadInputError(source, f"missing key: {name}")
    for name, p in declared.items():
        if name in body:
            try:
                values[name] = check_value(p, body[name], name)
            except SeqrecError as exc:
                raise BadInputError(source, str(exc)) from None
        elif not partial:
            if p.legacy is None:
                raise BadInputError(source, f"missing key: {name}")
            values[name] = p.legacy  # a checkpoint from before the field existed
    return cls(**values)


def to_json(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------------------------------------- files
def read_json_file(path: Path | str, what: str = "JSON file") -> Any:
    """Parse a JSON file with the shared text reader (``textio.read_json``): a missing file, an
    undecodable byte, bad JSON, NaN/Infinity or a repeated key is one error naming the file."""
    from .textio import read_json

    return read_json(path, what=what)


def values_from_file(
    body: Any, source: Path | str, params: Iterable[Param], aliases: Mapping[str, str] | None = None
) -> dict[str, tuple[Any, str]]:
    """Map a JSON object of option values to fields: ``{field: (value, 'file: key')}``, values
    checked. Keys may be the option name with underscores (``layers``), the field name
    (``num_layers``) or a declared alias (BERT-style ``num_hidden_layers``); keys starting with
    ``_`` are comments. Unknown keys are one error listing them."""
    if not isinstance(body, dict):
        raise BadInputError(source, "expected a JSON object of option names and values")
    by_key: dict[str, Param] = {}
    for p in params:
        by_key[p.key] = p
        by_key.setdefault(p.name, p)
    for alias, name in (aliases or {}).items():
        match = [p for p in by_key.values() if p.name == name]
        if match:
            by_key[alias] = match[0]
    unknown = sorted(k for k in body if not k.startswith("_") and k not in by_key)
    if unknown:
        raise BadInputError(source, f"unknown parameter(s): {', '.join(unknown)}")
    out: dict[str, tuple[Any, str]] = {}
    for key, value in body.items():
        if key.startswith("_"):
            continue
        p = by_key[key]
        where = f"{source}: {key}"
        out[p.name] = (check_value(p, value, where), where)
    return out


# ---------------------------------------------------------------------------------------------- options
def typer_parameters(params: Iterable[Param], defaults: Mapping[str, Any] | None = None, hidden: Iterable[str] = ()):
    """``inspect.Parameter`` objects (keyword-only, ``Annotated`` with ``typer.Option``) for a
    command signature. Parameter names are the option keys (``layers`` for ``--layers``).
    Ranges are not given to Typer: :func:`check_value` reports them as one ``Error:`` line."""
    import typer

    defaults = defaults or {}
    hidden = set(hidden)
    out = []
    for p in params:
        default = defaults.get(p.name, p.default)
        help_text = p.help
        if p.kind in ("int", "float") and (p.min is not None or p.max is not None):
            help_text += f" ({p.describe()})"
        decls = [f"{p.flag}/--no-{p.flag[2:]}"] if p.kind == "bool" else [p.flag]
        tp: Any = {"int": int, "float": float, "bool": bool, "str": str}.get(p.kind)
        if p.kind == "choice":
            tp = Literal[p.choices]  # type: ignore[valid-type]
        option = typer.Option(*decls, help=help_text, hidden=p.name in hidden, rich_help_panel=p.panel)
        out.append(inspect.Parameter(p.key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[tp, option]))
    return out


def with_signature(func, parameters: list[inspect.Parameter]):
    """Give ``func(**kwargs)`` the signature Typer reads its options from."""
    func.__signature__ = inspect.Signature(parameters)
    func.__annotations__ = {p.name: p.annotation for p in parameters}
    return func


# ---------------------------------------------------------------------------------------------- typed records
def parse_record(cls: type, body: Any, source: Path | str, prefix: str = "") -> Any:
    """A plain dataclass (fields of type str, int, float, bool, ``X | None``, ``dict`` or another
    such dataclass) from a JSON object, every key checked: a missing key, an unknown key or a value
    of the wrong type is one :class:`BadInputError` naming ``source`` and the key. Fields with a
    default may be absent."""
    if not isinstance(body, dict):
        raise BadInputError(source, f"{prefix.rstrip('.') or 'the file'} must be a JSON object, got {type(body).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(body) - names)
    if unknown:
        raise BadInputError(source, f"unknown key(s): {', '.join(prefix + k for k in unknown)}")
    values = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in body:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise BadInputError(source, f"missing key: {key}")
            continue
        values[f.name] = _typed_value(hints[f.name], body[f.name], source, key)
    return cls(**values)


def _typed_value(tp: Any, value: Any, source: Path | str, key: str) -> Any:
    args = get_args(tp)
    if type(None) in args:  # X | None
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return parse_record(tp, value, source, key + ".")
    origin = get_origin(tp)
    if origin is Literal:
        ok, want = value in get_args(tp), "one of " + ", ".join(map(str, get_args(tp)))
    elif tp is bool:
        ok, want = isinstance(value, bool), "true or false"
    elif tp is int:
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        want = "a finite number"
        value = float(value) if ok else value
    elif tp is str:
        ok, want = isinstance(value, str), "a string"
    elif (tp is dict or origin is dict) and isinstance(value, dict) and get_args(tp) and dataclasses.is_dataclass(get_args(tp)[1]):
        return {k: parse_record(get_args(tp)[1], v, source, f"{key}.{k}.") for k, v in value.items()}
    elif tp is dict or origin is dict:
        ok, want = isinstance(value, dict), "a JSON object"
        if ok and get_args(tp) and get_args(tp)[1] is str:
            ok, want = all(isinstance(v, str) for v in value.values()), "a JSON object of strings"
    elif tp is list or origin is list:
        ok, want = isinstance(value, list), "a JSON list"
    else:
        ok, want = True, ""
    if not ok:
        raise BadInputError(source, f"{key} must be {want}, got {shown(value)}")
    return value
