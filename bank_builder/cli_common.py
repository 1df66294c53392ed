"""What every LesionPaste command line shares: one-line errors and the recorded command."""

from __future__ import annotations

import shlex
import sys

import click
from tqdm import tqdm

from bank_builder.errors import LesionPasteError
from lesionpaste.files import describe_os_error


class Group(click.Group):
    """A click group that shows a ``LesionPasteError`` or an ``OSError`` as one line on stderr
    and exits 1."""

    def make_context(self, info_name, args, parent=None, **extra):
        ctx = super().make_context(info_name, list(args), parent=parent, **extra)
        ctx.meta.setdefault("lesionpaste.argv", [info_name, *args])
        return ctx

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LesionPasteError as exc:
            click.echo(f"{ctx.find_root().info_name}: error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # e.g. a full disk while writing: one line, not a traceback
            click.echo(f"{ctx.find_root().info_name}: error: {describe_os_error(exc)}", err=True)
            ctx.exit(1)


def warn_to_stderr(prog: str):
    """A ``warn`` callback printing ``<prog>: warning: ...`` lines on stderr."""
    return lambda message: tqdm.write(f"{prog}: warning: {message}", file=sys.stderr)


def command_line() -> str:
    """The command as the user typed it (from the current click context), for provenance."""
    return shlex.join(click.get_current_context().meta["lesionpaste.argv"])
