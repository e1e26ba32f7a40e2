"""Configuration: Hydra composition (``composition``), the overrides parsed once
(``overrides``), and the checks a run passes first: types (``value_types``, ``schema``)
and ranges (``checks``)."""
