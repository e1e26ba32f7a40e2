"""Environments: the factory (mbrl's ``EnvHandler`` plus this package's tasks) and the maze."""
