"""Lesion bank: extract lesions from annotated images into a versioned HDF5 file."""
