"""Models: the dynamics-model wrapper with the model step, and the discriminator.

- :mod:`.model_wrapper`: :class:`~.model_wrapper.BoundTransitionRewardModel`, mbrl's
  ``OneDTransitionRewardModel`` plus the bound term in its loss (the model step).
- :mod:`.discriminator`: :class:`~.discriminator.Discriminator`, ``C(s, a, s')``, whose logit
  estimates ``log p/q``.
"""
