"""How to cite the method, as the dataset cards and the model cards say it."""

#: the paper's authors and title, as it gives them
METHOD = (
    "Weikai Huang, Yijin Huang and Xiaoying Tang, *LesionPaste: One-Shot Anomaly Detection for "
    "Medical Images*"
)
