"""What every LesionPaste command line shares: one-line errors and the recorded command."""

from __future__ import annotations

import shlex
import sys

import click

from bank_builder.errors import LesionPasteError


class Group(click.Group):
    """A click group that shows a ``LesionPasteError`` as one line on stderr and exits 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LesionPasteError as exc:
            click.echo(f"{ctx.find_root().info_name}: error: {exc}", err=True)
            ctx.exit(1)


def warn_to_stderr(prog: str):
    """A ``warn`` callback printing ``<prog>: warning: ...`` lines on stderr."""
    return lambda message: click.echo(f"{prog}: warning: {message}", err=True)


def command_line(prog: str) -> str:
    """The command as the user typed it, for provenance records."""
    return shlex.join([prog, *sys.argv[1:]])
