"""Trainer and evaluator (lp-train, lp-eval) for synthesized datasets. Arrives with its issue."""
