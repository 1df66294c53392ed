"""The one exception type that carries a user-facing message."""


class LesionPasteError(Exception):
    """Bad input or a refused operation: the message is shown to the user as one line.

    Raise it with a message that says what is wrong, with which file, and what to do.
    Command-line entry points turn it into ``<prog>: error: <message>`` and a non-zero exit.
    """
