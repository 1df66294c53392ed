"""The numbers an evaluation reports, as pure functions of scores, labels and maps: ROC AUC with
DeLong intervals and the paired test, operating points, pixel metrics (AUPRO, Dice), and image
scores from anomaly maps."""
