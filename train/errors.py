"""The trainer's user-facing error (train/ imports neither synth nor bank_builder)."""


class TrainError(Exception):
    """Bad input or a refused operation, shown to the user as one line."""
