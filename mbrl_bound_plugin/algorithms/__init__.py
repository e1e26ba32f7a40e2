"""Training loops in mbrl's form: ``train(env, test_env, termination_fn, cfg)``.

- :mod:`.bound`: ``algorithm=bound``, MBPO's loop plus the discriminator, model and policy steps.
- :mod:`.bound_run`: :class:`~.bound_run.BoundRun`, the state that loop reads and advances.
"""
