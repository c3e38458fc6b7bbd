"""Load params.yaml and validate it against the JSON schema before any work starts."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from varreason.io import InputError, read_text
from varreason.prompting import format_from_params


class ParamsError(ValueError):
    """A params file that does not match the schema; the message names the file and the key."""


@cache
def schema() -> dict:
    return yaml.safe_load(resources.files("varreason").joinpath("schemas/params.schema.yaml").read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate_params(params: dict, source: str = "params") -> dict:
    """Raise ParamsError listing every problem, each with its dotted key; return params unchanged."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors:
            msg = e.message
            if e.validator in ("additionalProperties", "unevaluatedProperties"):
                msg = f"unknown key(s): {msg}"
            lines.append(f"  {_key_path(e)}: {msg}")
        raise ParamsError(f"{source}: invalid parameters\n" + "\n".join(lines))
    t = params["task"]
    if t["min_ops"] > t["max_ops"]:
        raise ParamsError(f"{source}: task.min_ops ({t['min_ops']}) > task.max_ops ({t['max_ops']})")
    try:
        format_from_params(t)
    except ValueError as e:
        raise ParamsError(f"{source}: {e}") from e
    too_big = [k for k in params["evaluate"]["pass_k"] if k > params["evaluate"]["n_samples"]]
    if too_big:
        raise ParamsError(f"{source}: evaluate.pass_k {too_big} exceeds evaluate.n_samples")
    return params


def apply_overrides(params: dict, overrides: list[str], source: str = "--set") -> dict:
    """A copy of ``params`` with ``KEY=VALUE`` overrides applied (dotted keys, values parsed as YAML).

    The claims runs use this to change the seed or a selection rule per job without a params file each.
    An unknown key is an error here, before the schema sees it, so the message names the override.
    """
    out = copy.deepcopy(params)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"{source} {item!r}: expected KEY=VALUE, e.g. seed=3 or select.mode=argmax")
        *parents, leaf = key.split(".")
        node = out
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"{source} {item!r}: {'.'.join(parents[: i + 1])} is not a section of the params")
            node = node[part]
        if leaf not in node:
            raise ParamsError(f"{source} {item!r}: unknown key {key!r}")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ParamsError(f"{source} {item!r}: value is not valid YAML: {e}") from e
    return out


def overrides_between(base: dict, changed: dict, prefix: str = "") -> list[str]:
    """``key=value`` items (dotted keys, JSON values) that turn ``base`` into ``changed``."""
    out = []
    for key, value in changed.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out += overrides_between(base[key], value, dotted + ".")
        elif key not in base or base[key] != value:
            out.append(f"{dotted}={json.dumps(value)}")
    return out


def _read(path: Path) -> str:
    try:
        return read_text(path)
    except InputError as e:  # not UTF-8: the message names the byte offset
        raise ParamsError(str(e)) from e


def load_params_file(path: str | Path) -> dict:
    """The raw YAML mapping of a params file (no validation)."""
    return yaml.safe_load(_read(Path(path)))


def load_params(path: str | Path = "params.yaml", overrides: list[str] = ()) -> dict:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        params = yaml.safe_load(_read(path))
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of parameters at the top level")
    if overrides:
        params = apply_overrides(params, list(overrides))
        return validate_params(params, f"{path} with --set {' '.join(overrides)}")
    return validate_params(params, str(path))


def check_file(params_path: str | Path, overrides: list[str] = ()) -> int:
    """``varreason validate-params``: validate the file (with any ``--set`` overrides), say ok."""
    load_params(params_path, overrides)
    print(f"{params_path}: ok")
    return 0
