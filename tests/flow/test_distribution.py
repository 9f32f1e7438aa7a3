"""FFJORDDistribution behaves like a torch Distribution over d-dimensional events."""

import torch

from cnfviz import FFJORD, FFJORDDistribution, ModelConfig, SolverConfig


def test_sample_and_log_prob_shapes_and_consistency():
    flow = FFJORD(2, ModelConfig(hidden=(8,)), SolverConfig("dopri5", rtol=1e-6, atol=1e-6))
    dist = FFJORDDistribution(flow, generator=torch.Generator().manual_seed(0))
    assert dist.event_shape == (2,) and dist.batch_shape == ()
    x = dist.sample((4, 3))
    assert x.shape == (4, 3, 2)
    lp = dist.log_prob(x)
    assert lp.shape == (4, 3)
    torch.testing.assert_close(lp.reshape(-1), flow.log_prob(x.reshape(-1, 2)))
    assert dist.sample().shape == (2,)


def test_samples_follow_the_model_density():
    # With f ≡ 0 the distribution is N(0, I): the sample moments say so.
    flow = FFJORD(1, ModelConfig(hidden=(4,)), SolverConfig("rk4", step_size=0.5))
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
    x = FFJORDDistribution(flow, generator=torch.Generator().manual_seed(1)).sample((20_000,))
    assert abs(float(x.mean())) < 0.03 and abs(float(x.std()) - 1) < 0.03
