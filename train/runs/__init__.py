"""A run folder: checked, locked and swapped in (folder.py), its model restored from its checkpoint
(restore.py), its input contract, and its model card."""
