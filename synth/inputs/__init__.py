"""What a synthesis reads: where the bank and normals are, which normals a run uses, each normal
read and prepared, evaluation sets and their ground-truth masks, CT volumes as slices."""
