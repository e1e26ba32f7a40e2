"""mbrl-bound Hydra plugins (discovered through the ``hydra_plugins`` namespace)."""
