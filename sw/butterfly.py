"""Torch modules for training butterfly networks whose weights the engine runs as they are.

- :class:`ButterflyTransform`: the chain of ``docs/spec.md`` §1, one ``(p, s)`` parameter per
  factor (the engine's weight layout). Forward gathers and sums per factor, so its cost is
  ``sum(p*s)`` per pixel, never ``n^2``; :meth:`ButterflyTransform.dense_matrix` gives the
  equivalent matrix for inspection.
- :class:`BFTConv2d`: a drop-in for a 1x1 ``nn.Conv2d`` on ``(N, C, H, W)``.
- :func:`replace_pointwise`: swaps every 1x1 convolution of a model for a :class:`BFTConv2d`.
- :func:`parameter_groups`: optimizer groups with weight decay off the butterfly weights (the
  BFT paper found decay destructive for them).

Paper-faithful choices (BFT, CVPR 2020): no batch norm or non-linearity between factors, an
optional first-to-last residual, and the initialization of its eq. 9, generalized to any chain.
"""

import math

import torch
from torch import nn

from bfly.hw.config import EngineConfig, Factor, ConfigError, radix_factorization
from bfly.hw.connectivity import factor_product, input_index

__all__ = ["ButterflyTransform", "BFTConv2d", "pointwise_chain", "replace_pointwise",
           "parameter_groups", "eq9_bound"]


def _square_chain(n, k):
    if n == 1:
        return []
    return list(EngineConfig.mixed_radix(radix_factorization(n, k)).factors)


def pointwise_chain(c_in, c_out, k=4):
    """The chain :class:`BFTConv2d` uses for ``c_in -> c_out`` channels.

    - ``c_in == c_out``: ``BFT(n, k)`` with mixed radices where ``n`` is not a power of ``k``.
    - otherwise the butterfly mixes on the narrower side, and one rectangular factor of
      ``g = gcd(c_in, c_out)`` blocks, each mapping ``c_in/g`` inputs to ``c_out/g`` outputs,
      changes the width: expansion is ``BFT(c_in)`` then the rectangular factor; reduction is the
      rectangular factor then ``BFT(c_out)``.

    Either way every output depends on every input, the rank is at most ``min(c_in, c_out)`` as
    for a dense layer, and the cost is ``min * k * log_k(min)`` plus ``max(c_in, c_out) *
    min(c_in, c_out) / g`` weights for the rectangular factor.
    """
    if c_in < 1 or c_out < 1:
        raise ConfigError(f"channel counts must be positive, not {c_in} -> {c_out}")
    if c_in == c_out:
        chain = _square_chain(c_in, k)
        return chain or [Factor(b=1, r=1, s=1, t=1)]
    g = math.gcd(c_in, c_out)
    rect = Factor(b=g, r=c_out // g, s=c_in // g, t=1)
    if c_out > c_in:
        return _square_chain(c_in, k) + [rect]
    return [rect] + _square_chain(c_out, k)


def eq9_bound(factors):
    """Half-width ``y`` of the uniform initialization of every weight (BFT paper, eq. 9).

    With ``L`` factors each product-matrix entry along one path is a product of ``L`` weights,
    ``E|prod| = (y/2)^L``; eq. 9 sets it to the Xavier mean ``x/2``, ``x = sqrt(6/(n_in+n_out))``.
    Generalized: where input and output are joined by ``P`` paths on average (1 in a BFT), the
    entry is a sum of ``P`` such products with random signs, so the target per path is
    ``x / (2 sqrt(P))``.
    """
    n_in, n_out = factors[0].q, factors[-1].p
    x = math.sqrt(6.0 / (n_in + n_out))
    paths = None
    for f in factors:
        ones = torch.ones(f.p, f.s, dtype=torch.float64)
        m = _factor_matrix(f, ones)
        paths = m if paths is None else m @ paths
    mean_paths = float(paths[paths > 0].mean())
    L = len(factors)
    return 2.0 * (x / (2.0 * math.sqrt(mean_paths))) ** (1.0 / L)


def _factor_matrix(f, w):
    """The ``(p, q)`` matrix of factor ``f`` with ``(p, s)`` weights ``w``."""
    m = torch.zeros(f.p, f.q, dtype=w.dtype)
    m.scatter_(1, torch.as_tensor(input_index(f)), w)
    return m


class ButterflyTransform(nn.Module):
    """A chain of butterfly factors acting on the last dimension: ``(..., n_in) -> (..., n_out)``.

    ``factors``: a sequence of :class:`bfly.hw.config.Factor` (or an :class:`EngineConfig`), input to
    output. ``weights[l]`` is the ``(p, s)`` parameter of factor ``l``, row ``o`` holding the
    ``s`` weights of output ``o``, exactly as the engine stores them. ``residual`` adds the input
    to the output (first-to-last; only where ``n_in == n_out``).
    """

    def __init__(self, factors, residual=False):
        super().__init__()
        if isinstance(factors, EngineConfig):
            factors = factors.factors
        self.config = EngineConfig(factors=tuple(factors))        # validates the chain
        self.factors = self.config.factors
        if residual and self.config.n_in != self.config.n_out:
            raise ConfigError(f"a residual needs n_in == n_out, not {self.config.n_in} -> {self.config.n_out}")
        self.residual = residual
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(f.p, f.s)) for f in self.factors)
        self.reset_parameters()

    @property
    def n_in(self):
        return self.config.n_in

    @property
    def n_out(self):
        return self.config.n_out

    def reset_parameters(self):
        """Uniform in ``(-y, y)`` with ``y`` from eq. 9 (:func:`eq9_bound`)."""
        y = eq9_bound(self.factors)
        with torch.no_grad():
            for w in self.weights:
                w.uniform_(-y, y)

    def forward(self, x):
        shape = x.shape
        h = x.reshape(-1, shape[-1])
        for f, w in zip(self.factors, self.weights):
            h = factor_product(f, w, h, torch.einsum)        # p*s multiplies a pixel
        if self.residual:
            h = h + x.reshape(-1, shape[-1])
        return h.reshape(*shape[:-1], self.n_out)

    def dense_matrix(self):
        """The ``(n_out, n_in)`` matrix this transform applies (residual included)."""
        eye = torch.eye(self.n_in, dtype=self.weights[0].dtype, device=self.weights[0].device)
        return self.forward(eye).T

    def extra_repr(self):
        return f"chain={self.config.chain_rows()}, residual={self.residual}"


class BFTConv2d(nn.Module):
    """Drop-in for ``nn.Conv2d(in_channels, out_channels, 1)`` computed by a butterfly chain.

    The chain is :func:`pointwise_chain` ``(in_channels, out_channels, k)``; ``residual`` adds the
    input (first-to-last) where the channel counts match. Acts on ``(N, C, H, W)``.
    """

    def __init__(self, in_channels, out_channels, k=4, bias=False, residual=False):
        super().__init__()
        self.in_channels, self.out_channels, self.k = in_channels, out_channels, k
        self.transform = ButterflyTransform(pointwise_chain(in_channels, out_channels, k),
                                            residual=residual)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x):
        y = self.transform(x.movedim(1, -1))
        if self.bias is not None:
            y = y + self.bias
        return y.movedim(-1, 1)

    def macs_per_pixel(self):
        return self.transform.config.n_weights

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, k={self.k}, bias={self.bias is not None}"


def replace_pointwise(model, k=4, residual=False):
    """Replace every 1x1, stride-1, ungrouped ``nn.Conv2d`` of ``model`` (in place) by a
    :class:`BFTConv2d`; returns the number replaced."""
    count = 0
    for name, child in list(model.named_children()):
        if (isinstance(child, nn.Conv2d) and child.kernel_size == (1, 1) and child.groups == 1
                and child.stride == (1, 1) and child.padding in ((0, 0), "valid")):
            new = BFTConv2d(child.in_channels, child.out_channels, k=k, bias=child.bias is not None,
                            residual=residual and child.in_channels == child.out_channels)
            setattr(model, name, new.to(child.weight.device))
            count += 1
        else:
            count += replace_pointwise(child, k, residual)
    return count


def parameter_groups(model, weight_decay):
    """Optimizer groups: butterfly weights without weight decay, everything else with it."""
    butterfly, other = [], []
    for module in model.modules():
        if isinstance(module, ButterflyTransform):
            butterfly.extend(module.weights)
    ids = {id(p) for p in butterfly}
    other = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": butterfly, "weight_decay": 0.0},
            {"params": other, "weight_decay": weight_decay}]
