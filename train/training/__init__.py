"""Training a detector on a synthesized dataset: its configuration, the loop, its checkpoints, the
schedule, frozen stages, the dataset in memory, and validation (same-bank or held-out lesions)
and the choices made by it."""
