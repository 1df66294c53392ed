"""The trainer (lp-train, lp-eval, lp-knn, lp-select, lp-predict, lp-export): its commands at
the top (``cli.py``, ``predict_cli.py``, ``export_cli.py``) and its library in sub-packages,
each standing on those before it: models, metrics, training, runs, evaluation, deploy."""
