"""A dataset for other people and tools: its card, a preview picture, and exports to the MVTec and
imagefolder layouts."""
