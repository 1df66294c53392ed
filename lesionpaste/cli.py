"""What every LesionPaste command line shares: one-line errors and the recorded command.

``Group`` (``lp-bank``, ``lp-synth``) and ``Command`` (``lp-train``, ``lp-eval``, ``lp-knn``) are
the same wrapper over click's two kinds of command.
"""

from __future__ import annotations

import shlex
import sys

import click
from tqdm import tqdm

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import describe_os_error


class OneLineErrors:
    """Mixed into a click command: a ``LesionPasteError`` or an ``OSError`` is shown as one
    line, ``<prog>: error: ...``, on stderr with exit status 1 (never a traceback), and the
    command line as typed is kept for provenance (``command_line``)."""

    def make_context(self, info_name, args, parent=None, **extra):
        """Click's context, with the command line as typed kept in ``ctx.meta``.

        Args:
            info_name: the program or command name, as typed.
            args: the command-line arguments that follow it.
            parent: the parent context (a group's), if any.
            **extra: further keyword arguments for ``click.Context``.

        Returns:
            The context, with ``ctx.meta["lesionpaste.argv"]`` set.
        """
        ctx = super().make_context(info_name, list(args), parent=parent, **extra)
        ctx.meta.setdefault("lesionpaste.argv", [info_name, *args])
        return ctx

    def invoke(self, ctx: click.Context):
        """Run the command; a ``LesionPasteError`` or ``OSError`` becomes one line and exit 1.

        Args:
            ctx: the command's click context.

        Returns:
            Whatever the command's callback returns.
        """
        try:
            return super().invoke(ctx)
        except LesionPasteError as exc:
            click.echo(f"{ctx.find_root().info_name}: error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # e.g. a full disk while writing: one line, not a traceback
            click.echo(f"{ctx.find_root().info_name}: error: {describe_os_error(exc)}", err=True)
            ctx.exit(1)


class Group(OneLineErrors, click.Group):
    """A click group with one-line errors."""


class Command(OneLineErrors, click.Command):
    """A click command with one-line errors."""


def warn_to_stderr(prog: str):
    """A ``warn`` callback printing ``<prog>: warning: ...`` lines on stderr.

    Args:
        prog: the program name that starts each line (e.g. ``lp-synth``).

    Returns:
        A function of one message string that prints it (through ``tqdm.write``, so that
        progress bars are not broken).
    """
    return lambda message: tqdm.write(f"{prog}: warning: {message}", file=sys.stderr)


def command_line() -> str:
    """The command as the user typed it (from the current click context), for provenance.

    Returns:
        The command line, shell-quoted (``shlex.join``).
    """
    return shlex.join(click.get_current_context().meta["lesionpaste.argv"])
