"""Install the shipped SLURM profile where Snakemake looks for a bare ``--profile slurm``.

Snakemake resolves ``--profile NAME`` in ``$XDG_CONFIG_HOME/snakemake/NAME`` (default
``~/.config/snakemake/NAME``) and ``/etc/xdg/snakemake/NAME``; this copies
``workflow/profiles/slurm/config.yaml`` there, with the cluster's partition and account filled in.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from varreason.io import InputError, write_text


def user_profile_dir(name: str = "slurm") -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "snakemake" / name


def install_profile(
    source: str | Path, partition: str | None = None, account: str | None = None, dest: str | Path | None = None
) -> Path:
    """Write the profile (keeping its comments) to ``dest`` or the user's profile directory."""
    source = Path(source)
    if not (source / "config.yaml").exists():
        raise InputError(f"{source}: no config.yaml (run from the repository root, or pass --source)")
    text = (source / "config.yaml").read_text()
    if partition:
        text, n = _set(text, "slurm_partition", partition)
        if not n:
            raise InputError(f"{source}/config.yaml: no slurm_partition line to set")
    if account:
        text, n = _set(text, "slurm_account", account)
        if not n:
            raise InputError(f"{source}/config.yaml: no slurm_account line to set")
    yaml.safe_load(text)  # still valid YAML
    out = Path(dest) if dest else user_profile_dir()
    write_text(text, out / "config.yaml")
    return out


def install(
    source: str | Path, partition: str | None = None, account: str | None = None, dest: str | Path | None = None
) -> int:
    """``varreason install-profile``: install it and say where."""
    out = install_profile(source, partition, account, dest)
    print(f"installed {out}/config.yaml: `snakemake --profile slurm` now uses it")
    return 0


def _set(text: str, key: str, value: str) -> tuple[str, int]:
    """Set (or uncomment) ``key: value`` under default-resources, keeping the file's comments."""
    lines, n = text.splitlines(), 0
    for i, line in enumerate(lines):
        stripped = line.lstrip("# ").lstrip()
        if stripped.startswith(f"{key}:") and line.startswith("  "):
            lines[i] = f"  {key}: {value}"
            n += 1
    return "\n".join(lines) + "\n", n
