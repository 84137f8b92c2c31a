"""Differential testing (issue 16): generated legacy programs, upgraded by the
tool, run on flax 0.3.6 and on current flax; see ``bench/fuzz.py``."""
