"""A hand-derived backward pass for the dynamics MLP with forward-mode tangents.

For the small networks of this project the cost of an ODE function evaluation is dominated by
per-operation overhead, not arithmetic: autograd records ~60 tiny nodes per evaluation and then
replays them one by one. This ``autograd.Function`` computes the same outputs without recording a
graph, and differentiates them in one hand-written reverse sweep with fewer, larger operations.

Notation for layer ``l`` with primal ``h`` (N, in) and tangents ``T`` (k, N, in):

    pre = h Wgᵀ + s,   U = T Wgᵀ,   h' = σ(pre),   T' = U ⊙ σ'(pre)

where ``Wg`` and ``s`` fold in the time conditioning (``Wg = W·g(t)``, ``s = b·g(t) + c·t`` for
concatsquash). Because the tangents depend on ``pre`` through σ', the reverse sweep needs σ''.

Checked against plain autograd with ``gradcheck`` in ``tests/test_dynamics.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .dynamics import ODENet

__all__ = ["tangent_mlp"]


def _affine(time: str, t: Tensor, p: list[Tensor]) -> tuple[Tensor, Tensor, Tensor | None]:
    """The layer's effective weight (out, in), shift (out,) and gate (out,) at time t."""
    if time == "none":
        return p[0], p[1], None
    if time == "concat":
        return p[0], torch.addcmul(p[1], t, p[2]), None
    w, b, gw, gb, hb = p
    gate = torch.sigmoid(torch.addcmul(gb, t, gw))
    return w * gate[:, None], torch.addcmul(t * hb, b, gate), gate


def _param_grads(
    time: str, t: Tensor, p: list[Tensor], gate: Tensor | None, d_wg: Tensor, d_s: Tensor
) -> tuple[list[Tensor], Tensor | None]:
    """Chain the gradients of (Wg, s) back to the layer's parameters (``param_list`` order) and to t.

    The time gradient matters with adaptive solvers under direct backprop: the step sizes, and so
    the evaluation times, depend on the state and the parameters.
    """
    if time == "none":
        return [d_wg, d_s], None
    if time == "concat":
        return [d_wg, d_s, d_s * t], (d_s * p[2]).sum()
    assert gate is not None
    w, b, gw, _, hb = p
    d_gate = (d_wg * w).sum(1) + d_s * b
    d_gpre = d_gate * gate * (1 - gate)
    d_t = (d_gpre * gw).sum() + (d_s * hb).sum()
    return [d_wg * gate[:, None], d_s * gate, d_gpre * t, d_gpre, d_s * t], d_t


def _groups(sizes: list[int], params: tuple[Tensor, ...]) -> list[list[Tensor]]:
    out, i = [], 0
    for n in sizes:
        out.append(list(params[i : i + n]))
        i += n
    return out


class _TangentMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, net: ODENet, t: Tensor, z: Tensor, seeds: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
        layers = net.layers
        sizes = [len(layer.param_list()) for layer in layers]
        last = len(layers) - 1
        h, tan = z, seeds
        saved: list[Tensor] = []
        gates: list[Tensor | None] = []
        acts: list[bool] = []
        for li, (layer, p) in enumerate(zip(layers, _groups(sizes, params), strict=True)):
            wg, s, gate = _affine(layer.time, t, p)
            wgt = wg.T
            pre = torch.addmm(s, h, wgt)
            u = torch.matmul(tan, wgt)
            saved += [h, tan]
            gates.append(gate)
            act = li < last or net.final_activation
            acts.append(act)
            if act:
                y = net.act.fn(pre)
                d1 = net.act.grad(pre, y)
                saved += [pre, u, y, d1]
                h, tan = y, u * d1
            else:
                h, tan = pre, u
        ctx.net, ctx.sizes, ctx.gates, ctx.acts = net, sizes, gates, acts
        ctx.save_for_backward(t, *params, *saved)
        return h, tan

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor | None, grad_tan: Tensor | None) -> tuple[Tensor | None, ...]:
        net: ODENet = ctx.net
        t, *rest = ctx.saved_tensors
        n_params = sum(ctx.sizes)
        groups = _groups(ctx.sizes, tuple(rest[:n_params]))
        saved = rest[n_params:]
        # Per layer the saved tensors are [h_in, T_in] plus [pre, U, y, σ'] when it has an activation.
        per_layer, j = [], 0
        for act in ctx.acts:
            width = 6 if act else 2
            per_layer.append(saved[j : j + width])
            j += width
        h_last, tan_last = per_layer[-1][0], per_layer[-1][1]
        gh = grad_h if grad_h is not None else h_last.new_zeros(h_last.shape[0], net.dim)
        gt = grad_tan if grad_tan is not None else tan_last.new_zeros((*tan_last.shape[:-1], net.dim))
        grads: list[Tensor] = [torch.empty(0)] * n_params
        grad_time = torch.zeros_like(t) if ctx.needs_input_grad[1] else None
        offset = n_params
        for li in range(len(net.layers) - 1, -1, -1):
            layer, p, gate = net.layers[li], groups[li], ctx.gates[li]
            sv = per_layer[li]
            h_in, tan_in = sv[0], sv[1]
            if ctx.acts[li]:
                pre, u, y, d1 = sv[2:]
                # pre feeds h' = σ(pre) and, through σ'(pre), every tangent T' = U σ'(pre).
                d_pre = torch.addcmul(gh * d1, (gt * u).sum(0), net.act.grad2(pre, y, d1))
                d_u = gt * d1
            else:
                d_pre, d_u = gh, gt
            wg, _, _ = _affine(layer.time, t, p)
            d_u_rows = d_u.reshape(-1, d_u.shape[-1])
            d_wg = torch.addmm(d_pre.T @ h_in, d_u_rows.T, tan_in.reshape(-1, tan_in.shape[-1]))
            offset -= len(p)
            layer_grads, d_t = _param_grads(layer.time, t, p, gate, d_wg, d_pre.sum(0))
            grads[offset : offset + len(p)] = layer_grads
            if grad_time is not None and d_t is not None:
                grad_time = grad_time + d_t
            gh = d_pre @ wg
            if li > 0:
                gt = torch.matmul(d_u, wg)
        return (None, grad_time, gh, None, *grads)


def tangent_mlp(net: ODENet, t: Tensor, z: Tensor, seeds: Tensor) -> tuple[Tensor, Tensor]:
    """``f(t, z)`` (N, d) and the tangents ``J·seedsₖ`` (k, N, d) for ``seeds`` of shape (k, N, d).

    Differentiable with respect to ``t``, ``z`` and the network's parameters (not ``seeds``).
    """
    params = [p for layer in net.layers for p in layer.param_list()]
    return _TangentMLP.apply(net, t, z, seeds, *params)
