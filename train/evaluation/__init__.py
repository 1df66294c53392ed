"""Evaluating a run on real images (lp-eval): scoring, the evaluation's files, anomaly maps against
lesion masks, Grad-CAM, the ROC picture, the k-NN baseline, and cross-validation by patient."""
