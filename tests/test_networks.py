"""The score networks' hand-written forward-mode trace."""

import pytest
import torch

from sklearn_diffusion.networks import ScoreMLP, init_parameters


@pytest.mark.parametrize("d, widths", [
    (3, (8,)), (3, (3,)), (3, (8, 8)), (3, (3, 3)), (3, (8, 5, 5)), (4, (8, 8, 8)), (2, (6, 4)),
])
def test_trace_matches_the_autograd_jacobian(d, widths):
    # Every branch: first/last layer residual or not, one to three layers.
    g = torch.Generator().manual_seed(0)
    net = init_parameters(ScoreMLP(d, widths), g).double()
    x = torch.randn(5, d, generator=g, dtype=torch.float64)
    t = torch.rand(5, generator=g, dtype=torch.float64) + 0.05
    noise, trace = net.noise_and_trace(x, t)
    jac = torch.func.vmap(torch.func.jacrev(lambda r, s: net(r[None], s[None])[0]))(x, t)
    torch.testing.assert_close(noise, net(x, t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trace, jac.diagonal(dim1=1, dim2=2).sum(1), rtol=1e-10, atol=1e-10)
