"""The synthesizer (lp-synth): its command at the top (``cli.py``) and its library in
sub-packages: inputs (what a run reads), pasting (the image maths of a twin), run (workers,
resume, publishing) and sharing (the card, previews, exports)."""
