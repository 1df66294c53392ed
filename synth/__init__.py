"""Anomaly synthesizer (lp-synth): pastes bank lesions into normal images. Arrives with its issue."""
