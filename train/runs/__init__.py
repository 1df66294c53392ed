"""A run folder and what makes one: lp-train as one call (train_run.py, a request that checks
its own options), the folder checked, locked and swapped in (folder.py), cross-validation by
patient (crossval.py, folds.py), its model restored from its checkpoint (restore.py), its input
contract, and its model card."""
