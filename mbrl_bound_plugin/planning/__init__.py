"""Agents: :mod:`.sac_agent` is mbrl's SAC agent trained on the augmented reward."""
