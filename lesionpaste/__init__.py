"""LesionPaste's shared core: what the lesion bank builder, the synthesizer and the trainer all
stand on (the one user-facing error, file safety, the output guard, readers of received files).

It imports none of the three parts and no torch.
"""
