"""Where data lives: command-line option, then environment variable, then a config file.

The config file is TOML, found at ``$LP_CONFIG``, else ``./lesionpaste.toml``, else
``~/.config/lesionpaste/config.toml``; relative paths in it are relative to the file::

    [data]
    idrid_root = "/data/IDRiD"
    mosmed_root = "/data/MosMedData"
"""

from __future__ import annotations

import os
from pathlib import Path

from lesionpaste.errors import LesionPasteError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None


def config_file() -> Path | None:
    """The config file in use, or None.

    Returns:
        ``$LP_CONFIG``, else ``./lesionpaste.toml``, else ``~/.config/lesionpaste/config.toml``,
        the first that exists; None when there is none.

    Raises:
        LesionPasteError: ``$LP_CONFIG`` names a file that does not exist.
    """
    explicit = os.environ.get("LP_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise LesionPasteError(f"LP_CONFIG points to {path}, which does not exist")
        return path
    for path in (Path("lesionpaste.toml"), Path.home() / ".config/lesionpaste/config.toml"):
        if path.is_file():
            return path
    return None


def config_value(section: str, key: str) -> str | None:
    """A value from the config file, with relative paths resolved against the file.

    Args:
        section: the TOML table, e.g. ``"data"``.
        key: the key in it, e.g. ``"idrid_root"``.

    Returns:
        The value as a path string, resolved against the config file's folder; None when
        there is no config file or it has no such key.

    Raises:
        LesionPasteError: the file is not valid TOML, the value is not a string, or Python is
            older than 3.11 (no ``tomllib``).
    """
    path = config_file()
    if path is None:
        return None
    if tomllib is None:
        raise LesionPasteError(f"{path}: reading the config file needs Python 3.11 or newer")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LesionPasteError(f"{path}: not valid TOML ({exc})") from None
    value = data.get(section, {}).get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise LesionPasteError(f"{path}: [{section}] {key} must be a string")
    return str(path.parent / Path(value).expanduser())


def resolve_root(option: str | None, env_var: str, key: str, what: str) -> Path:
    """Resolve a data root from an option, an environment variable or the config file.

    Args:
        option: the command-line value (``--root``), or None.
        env_var: the environment variable to try next, e.g. ``LP_IDRID_ROOT``.
        key: the key under ``[data]`` in the config file, e.g. ``idrid_root``.
        what: the data set's name for messages, e.g. ``"IDRiD"``.

    Returns:
        The data root, an existing directory.

    Raises:
        LesionPasteError: no root is given anywhere, or it is not a directory.
    """
    value = option or os.environ.get(env_var) or config_value("data", key)
    if not value:
        raise LesionPasteError(
            f"no {what} root given: pass --root, set {env_var}, or set {key} under [data] "
            "in lesionpaste.toml"
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        raise LesionPasteError(f"{what} root {root} does not exist or is not a directory")
    return root
