"""Configuration: Hydra composition, override parsing and the checks a run passes first."""
