"""The tiny model's temporal modules: how a frame's latent features borrow from its neighbours.

- `FlowPropagation` (the default, `align="flow"`): BasicVSR-style bidirectional recurrence at latent
  resolution. A backward pass carries a hidden state from the window's last frame to its first, a
  forward pass from first to last; before each step the state is warped into the current frame by
  DIS optical flow between the LR frames (`vsrup.models.flow`). Every frame thus sees the whole
  window, aligned, at the cost of two small conv branches per frame.
- `offset_fuse` (`align="offset"`, the previous tiny model, kept for the ablation): each frame's
  two direct neighbours aligned by a learned, tanh-bounded offset field and gated.

Both work on features (B·T, C, h, w) of windows of `t` frames and feed the same fusion conv
(3C → C, residual) in the model; with t = 1 each frame is processed alone, which is exactly
per-frame inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.models.flow import warp


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


def _branch(in_ch: int, ch: int, blocks: int) -> nn.Sequential:
    """conv(in → ch) + residual blocks, initialised to output nearly nothing: the model starts as
    a per-frame model (a warm start from one keeps its quality) and training learns how much
    propagated state to mix in. The head is small, not zero, so its gradient is not symmetric."""
    head = nn.Conv2d(in_ch, ch, 3, padding=1)
    with torch.no_grad():
        head.weight.mul_(0.1)
        head.bias.zero_()
    blocks_ = [ResBlock(ch) for _ in range(blocks)]
    for block in blocks_:
        nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(block.conv2.bias)
    return nn.Sequential(head, *blocks_)


class FlowPropagation(nn.Module):
    """Bidirectional recurrent propagation of a hidden state, warped by flow between frames."""

    def __init__(self, ch: int, blocks: int) -> None:
        super().__init__()
        self.backward_branch = _branch(2 * ch, ch, blocks)  # (features, state from t+1)
        self.forward_branch = _branch(3 * ch, ch, blocks)  # (features, state from t-1, backward state)

    def forward(
        self, feats: torch.Tensor, t: int, flows: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward and forward states (B·T, C, h, w) for features of windows of `t` frames.
        `flows` (B·T, 4, h, w): channels 0–1 align frame t-1 to t, 2–3 frame t+1 to t."""
        f = feats.unflatten(0, (-1, t))
        fl = flows.unflatten(0, (-1, t)) if flows is not None else None
        state = torch.zeros_like(f[:, 0])
        backward = [state] * t
        for i in reversed(range(t)):
            if i < t - 1:
                state = warp(state, fl[:, i, 2:])
            state = self.backward_branch(torch.cat((f[:, i], state), 1))
            backward[i] = state
        state, forward = torch.zeros_like(f[:, 0]), []
        for i in range(t):
            if i > 0:
                state = warp(state, fl[:, i, :2])
            state = self.forward_branch(torch.cat((f[:, i], state, backward[i]), 1))
            forward.append(state)
        return torch.stack(backward, 1).flatten(0, 1), torch.stack(forward, 1).flatten(0, 1)


def neighbours(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Previous and next frame of every frame of (B·T, C, h, w) windows of length t. A window's
    first and last frames use themselves for the missing neighbour (per-frame behaviour there)."""
    w = x.unflatten(0, (-1, t))
    prev = torch.cat((w[:, :1], w[:, :-1]), 1).flatten(0, 1)
    nxt = torch.cat((w[:, 1:], w[:, -1:]), 1).flatten(0, 1)
    return prev, nxt


class NeighbourAlign(nn.Module):
    """Aligns a neighbour's latent to the current one with a predicted offset field and a gate."""

    def __init__(self, ch: int, hidden: int, max_offset: float) -> None:
        super().__init__()
        self.max_offset = max_offset
        self.hidden = nn.Conv2d(2 * ch, hidden, 3, padding=1)
        self.offset = nn.Conv2d(hidden, 2, 3, padding=1)
        self.gate = nn.Conv2d(hidden, 1, 3, padding=1)
        # Start as the identity warp with an open gate: training only has to learn corrections.
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, cur: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.hidden(torch.cat((cur, nb), 1)), 0.1)
        offset = self.max_offset * torch.tanh(self.offset(h))
        return warp(nb, offset) * torch.sigmoid(self.gate(h))


def offset_fuse(align: NeighbourAlign, fuse: nn.Conv2d, feats: torch.Tensor, t: int) -> torch.Tensor:
    """The previous tiny model's flow-free fusion: ±1 neighbour aligned by learned offsets (kept
    for the ablation, and so that weights saved before the flow module still load)."""
    if t > 1:
        prev, nxt = neighbours(feats, t)
        aligned_prev, aligned_next = align(feats, prev), align(feats, nxt)
    else:
        aligned_prev = aligned_next = align(feats, feats)
    return feats + fuse(torch.cat((feats, aligned_prev, aligned_next), 1))
