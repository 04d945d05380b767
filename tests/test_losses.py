"""losses.linear_cross_entropy: the blocked CPU computation against the plain formula
(F.cross_entropy over hidden @ weight.T + bias), values and gradients, with and without label
smoothing and bias, over several blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqrec_cli.models import losses


def _case(m, n, h=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(m, h, generator=g)
    weight = torch.randn(n, h, generator=g) * 0.5
    bias = torch.randn(n, generator=g) * 0.1
    targets = torch.randint(0, n, (m,), generator=g)
    return hidden, weight, bias, targets


def _grads(fn, hidden, weight, bias, targets, smoothing, with_bias):
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    loss = fn(leaves[0], leaves[1], targets, leaves[2] if with_bias else None, smoothing)
    loss.backward()
    return loss.detach(), [t.grad for t in leaves]


def _plain(hidden, weight, targets, bias, smoothing):
    scores = hidden @ weight.T + (bias if bias is not None else 0.0)
    return F.cross_entropy(scores, targets, reduction="sum", label_smoothing=smoothing)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("m,n", [(7, 5), (50, 40_000)])  # 40,000 items: blocks of 16 rows, 4 blocks
def test_blocked_equals_the_plain_formula(m, n, smoothing, with_bias):
    case = _case(m, n)
    expected, expected_grads = _grads(_plain, *case, smoothing, with_bias)
    got, got_grads = _grads(losses.linear_cross_entropy, *case, smoothing, with_bias)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    for a, b in zip(got_grads[: 3 if with_bias else 2], expected_grads):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    if not with_bias:
        assert got_grads[2] is None


def test_hand_computed_value():
    # one row, two items with scores 0 and log 3: softmax (1/4, 3/4); target item 0 -> -log(1/4)
    hidden = torch.tensor([[1.0]])
    weight = torch.tensor([[0.0], [torch.log(torch.tensor(3.0)).item()]])
    loss = losses.linear_cross_entropy(hidden, weight, torch.tensor([0]))
    assert loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), rel=1e-6)
    # label smoothing 0.5 over 2 items: target distribution (3/4, 1/4) -> 3/4 log 4 + 1/4 log 4/3
    smoothed = losses.linear_cross_entropy(hidden, weight, torch.tensor([0]), label_smoothing=0.5)
    expected = 0.75 * torch.log(torch.tensor(4.0)) + 0.25 * torch.log(torch.tensor(4.0 / 3.0))
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_scales_with_the_upstream_gradient():
    hidden, weight, _, targets = _case(20, 30)
    h1 = hidden.clone().requires_grad_()
    (losses.linear_cross_entropy(h1, weight, targets) / 20).backward()
    h2 = hidden.clone().requires_grad_()
    _plain(h2, weight, targets, None, 0.0).div(20).backward()
    assert torch.allclose(h1.grad, h2.grad, atol=1e-6)


def test_without_gradients_only_the_value():
    hidden, weight, _, targets = _case(20, 30)
    with torch.no_grad():
        value = losses.linear_cross_entropy(hidden, weight, targets)
    assert value.item() == pytest.approx(_plain(hidden, weight, targets, None, 0.0).item(), rel=1e-5)


def test_no_rows_is_zero():
    hidden, weight, _, _ = _case(0, 30)
    assert losses.linear_cross_entropy(hidden, weight, torch.zeros(0, dtype=torch.long)).item() == 0.0
