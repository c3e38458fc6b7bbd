"""What a ``varreason`` subcommand is: its options (``Opt``) and its description (``Command``).

The table of every command is varreason/pipeline.py; the CLI (varreason/cli.py) builds its parser
and dispatch from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Opt:
    """One CLI option; its name is the function's keyword argument (``set_out`` -> ``--set-out``).

    ``default``: a value, a path pattern formatted with the other options (``{shard}``), or a callable
    of (options, params) for a default that depends on them.
    """

    default: object = None
    help: str = ""
    type: Callable | None = None
    nargs: str | None = None
    choices: tuple | None = None
    required: bool = False
    action: str | None = None
    dest: str | None = None  # the keyword argument, when it differs from the option's name
    show: str | None = None  # how --help shows a callable default

    @property
    def shown(self):
        """The default as --help and the stage table show it (a callable's ``show``)."""
        return self.show if callable(self.default) else self.default

    def argparse_kwargs(self) -> dict:
        kw = {}
        if self.action:
            kw["action"] = self.action
        else:
            # a callable or a pattern ({shard}) is filled in after parsing, from the other options
            derived = callable(self.default) or (isinstance(self.default, str) and "{" in self.default)
            kw["default"] = None if derived else self.default
            for k in ("type", "nargs", "choices"):
                if getattr(self, k) is not None:
                    kw[k] = getattr(self, k)
        if self.required:
            kw["required"] = True
        shown = self.shown
        default = "" if self.required or self.action or shown in (None, []) else f"default: {shown}"
        kw["help"] = "; ".join(t for t in (self.help, default) if t) or None
        return kw


@dataclass(frozen=True)
class Command:
    """A ``varreason`` subcommand: a pipeline stage (``reads`` and ``writes`` set) or a tool."""

    name: str
    function: str  # "module:function", imported only when the command runs
    summary: str
    options: dict[str, Opt | str] = field(default_factory=dict)
    reads: tuple[str, ...] = ()  # params keys, dotted: the rule's rerun keys and dvc.yaml's params
    writes: tuple[str, ...] = ()  # the options that name its outputs
    runs_model: bool = False  # imports torch (sets its threads) before running
    needs_params: bool = True  # loads and validates --params first
    configure: str | None = None  # "module:function" that adds its own arguments (subcommands)

    @property
    def module(self) -> str:
        return self.function.split(":")[0]

    def load(self) -> Callable:
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)

    def option(self, name: str) -> Opt:
        o = self.options[name]
        return o if isinstance(o, Opt) else Opt(default=o)

    @property
    def is_stage(self) -> bool:
        return bool(self.writes)
