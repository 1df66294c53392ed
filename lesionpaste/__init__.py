"""LesionPaste's shared core: what the lesion bank builder, the synthesizer and the trainer all
stand on (the one user-facing error, file safety, the output guard, the bank and dataset
formats, image readers, preprocessing recipes).

It imports none of the three parts and no torch. For someone who received a dataset::

    import lesionpaste
    data = lesionpaste.open_dataset("eyeq-synth")   # checked now, images read when asked
    sample = data[0]                                # .image (H, W, C) uint8, .label, .mask

and for someone who received a trained detector (a run, or an ``lp-export`` folder)::

    detector = lesionpaste.load_detector("runs/eyeq")
    result = detector.predict(["photo1.jpeg", "photo2.jpeg"])   # raw files, prepared by its
    result.scores, result.flagged["pass_95"]                    # input contract, then scored
"""

from importlib import metadata as _metadata
from pathlib import Path as _Path

# The parts (bank_builder/, synth/, train/) stay at the top of the repository, beside this
# folder (the design card), and install as lesionpaste.bank_builder, .synth and .train. An
# installed copy finds them in this package; a source tree (a checkout, or mutmut's copy of one)
# finds them beside it: its root is searched after this folder, so an installed copy is never
# shadowed.
_ROOT = _Path(__file__).resolve().parent.parent
if all((_ROOT / part / "__init__.py").is_file() for part in ("bank_builder", "synth", "train")):
    __path__.append(str(_ROOT))

try:
    __version__ = _metadata.version("lesionpaste")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    """``lesionpaste.open_dataset`` and ``lesionpaste.load_detector``, imported when first used
    (the core's modules stay cheap; the detector's needs the trainer, ``train``)."""
    if name == "open_dataset":
        from lesionpaste.dataset import open_dataset

        return open_dataset
    if name == "load_detector":
        from lesionpaste.train.deploy.loading import load_detector

        return load_detector
    raise AttributeError(f"module 'lesionpaste' has no attribute {name!r}")
