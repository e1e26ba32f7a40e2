"""Plumbing a run needs: replay buffers, state dicts, checkpoints, wall time.

Nothing here knows the run object: each module takes and returns plain state.
"""
