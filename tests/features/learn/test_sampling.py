"""§6: the flow runs both ways: data pulled back, samples pushed forward, inverse(transform(z)) = z."""

import numpy as np
import torch

from cnfviz.features import learn as explain


def test_sampling_demo_runs_the_flow_both_ways(tiny_runs):
    _, models = tiny_runs
    model, trainer = models["none"]
    data = trainer.test_data[:40]
    demo = explain.sampling_demo(model, data, n_samples=40, n_times=5)
    assert demo.forward.shape == (5, 40, 2) and demo.backward.shape == (5, 40, 2)
    np.testing.assert_allclose(demo.backward[-1], data, atol=1e-6)
    with torch.no_grad():
        pulled = model.inverse(torch.as_tensor(data, dtype=torch.float32)).double().numpy()
        z = torch.as_tensor(demo.forward[0], dtype=torch.float32)
        pushed = model.transform(z)
        back = model.inverse(pushed)
    np.testing.assert_allclose(demo.backward[0], pulled, atol=1e-3)
    np.testing.assert_allclose(demo.forward[-1], pushed.double().numpy(), atol=1e-3)
    np.testing.assert_allclose(back.numpy(), z.numpy(), atol=1e-3)  # inverse(transform(z)) = z
    np.testing.assert_allclose(demo.pulled_mean, demo.backward[0].mean(0))


def test_the_figure_has_the_documented_traces(tiny_runs):
    _, models = tiny_runs
    model, trainer = models["none"]
    demo = explain.sampling_demo(model, trainer.test_data[:10], n_samples=10, n_times=3)
    fig = explain.sampling_figure(demo, 0)
    assert len(fig.data) == 4
    np.testing.assert_allclose(fig.data[2].x, demo.backward[0][:, 0])
