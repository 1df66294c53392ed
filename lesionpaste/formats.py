"""The names that mark LesionPaste's files, shared by their writers, readers and the output
guard (which recognises an earlier output before ``--overwrite`` replaces it)."""

#: ``dataset.json``'s ``format``: a synthetic dataset or an evaluation set.
DATASET_FORMAT = "lesionpaste-dataset"
#: The bank file's (HDF5) ``format`` attribute.
BANK_FORMAT = "lesionpaste-bank"
#: PNG pictures the tools write carry this ``tEXt`` chunk (keyword ``Software``).
PNG_SOFTWARE = b"LesionPaste"
#: ``lesionpaste-export.json``'s ``format``: a dataset exported into another tool's layout.
EXPORT_FORMAT = "lesionpaste-export"
