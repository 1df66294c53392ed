"""The networks: each backbone described once (backbones.py), built with its weights (build.py),
split into stages for --freeze, the dense decoder for --maps, the fused scoring-only form, and
how images reach a model on its device."""
