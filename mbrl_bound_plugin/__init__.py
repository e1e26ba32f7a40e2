"""mbrl-bound: joint model-policy training on the MnM lower bound, for mbrl-lib."""

__version__ = "0.1.0"
