"""Evaluating a run on real images (lp-eval, lp-knn): scoring and the evaluation's files,
anomaly maps against lesion masks, Grad-CAM, the ROC picture, overlays, and the k-NN
baseline."""
