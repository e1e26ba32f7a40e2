"""benchmarks/denormals.py's counting (its timings are the benchmark's business, not a test's)."""

from __future__ import annotations

import types

import pytest
import torch
from conftest import load_benchmark
from torch import nn

TINY = torch.finfo(torch.float32).tiny


@pytest.fixture(scope="module")
def denormals():
    return load_benchmark("denormals")


def test_subnormal_counts_nonzero_values_below_the_smallest_normal_float(denormals):
    values = torch.tensor([0.0, TINY / 4, -TINY / 1024, TINY, -TINY, 1.0])
    assert denormals.subnormal([values, torch.zeros(3)]) == (2, 9)
    assert denormals.subnormal([]) == (0, 0)


def test_census_looks_at_parameters_gradients_and_adam_moments_of_policy_and_critic(denormals):
    policy, critic = nn.Linear(3, 2), nn.Linear(4, 1)
    sac = types.SimpleNamespace(
        policy=policy,
        critic=critic,
        policy_optim=torch.optim.Adam(policy.parameters()),
        critic_optim=torch.optim.Adam(critic.parameters()),
    )
    with torch.no_grad():
        policy.weight[0, 0] = TINY / 8
    critic.weight.grad = torch.tensor([[TINY / 2, 0.0, 1.0, TINY / 16]])
    counts = denormals.census(sac)
    assert counts["policy parameters"] == (1, 3 * 2 + 2)
    assert counts["critic gradients"] == (2, 4)  # the bias has no gradient: not counted
    assert counts["policy gradients"] == (0, 0)
    assert counts["critic Adam exp_avg"] == (0, 0)  # no step yet: no moments
    assert set(counts) == {
        f"{net} {part}"
        for net in ("policy", "critic")
        for part in ("parameters", "gradients", "Adam exp_avg", "Adam exp_avg_sq")
    }
