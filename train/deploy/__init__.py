"""A trained detector at work: loaded from a run or an export, scoring new images (lp-predict), and
exported as one ONNX or TorchScript file (lp-export) that runs without this code."""
