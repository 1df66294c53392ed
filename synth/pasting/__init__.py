"""The image maths of an anomalous twin: lesion augmentation, colour matching, MixUp pasting and
placement, grade-mix tiers, one twin, and the CutPaste baseline. Pure functions of arrays and a
generator."""
