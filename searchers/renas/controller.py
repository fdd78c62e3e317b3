"""The reinforced mutation controller of RENAS (seed 001, section 4.2, Algorithm 2, details in 5.1.3).

Given a parent cell, the controller proposes one mutation per block:

- **Encoder**: an embedding layer and a bidirectional LSTM over the ``5B``-token cell string
  (``i1 i2 o1 o2 A`` per block; ``A`` is the fixed addition), embedding and hidden size 100. Its
  outputs ``H^b_{i1}, H^b_{i2}, H^b_{o1}, H^b_{o2}, H^b_A`` are the effects of each part. Two learned
  begin states ``H^{c-1}, H^{c-2}`` stand for the previous cells; ``H^{c-1}`` also starts the LSTM
  ("Enc(H^{c-1}, a)", Algorithm 2 line 2).
- **Mutation router**: a fully connected layer on each of ``H^b_{i1} .. H^b_{o2}``, softmax over the
  four: which part of block ``b`` to change.
- **Input mutator**: for an input part, each candidate ``[H_A^1 .. H_A^{b-1}, H^{c-1}, H^{c-2}]`` is
  concatenated with ``H^b_ID`` and scored by a fully connected layer (tanh, then a scalar: the
  additive attention the paper's "mechanism of attention" points to, as in ENAS), softmax.
- **Op mutator**: a fully connected layer on ``H^b_ID``, softmax over the op set.

Every logit is divided by the temperature (5.0) and squashed by ``tanh_constant * tanh`` (2.5), in
ENAS' order. All weights are drawn from N(0, 0.01). Training is REINFORCE (4.3): the reward is
``tan(f * pi / 2)`` of the child's fitness ``f``, plus 0.1 times the entropy of the decisions (5.1.3,
"add the entropy of the controller to the reward"), minus a moving-average baseline (decay 0.95;
the paper names no baseline: this is EAS', its ref. [3], and ENAS' variance reduction); Adam, lr 0.001.

Decisions are replayed by :meth:`MutationController.log_prob` from a parent cell and the recorded
actions, so the update after a child's evaluation needs no tensors kept across a checkpoint.
The paper's mutator may pick the current value again (it chooses among all inputs / ops); so does this one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasseg.searchers.renas.space import PARTS, CellSpec, Mutation


@dataclass
class Decision:
    """The distributions of one block's decisions (probabilities sum to 1) and what was chosen."""

    part_probs: torch.Tensor
    part: int
    value_probs: torch.Tensor
    value: int


class MutationController(nn.Module):
    """Embedding + (bi)LSTM encoder, mutation router, input mutator, op mutator (section 4.2)."""

    def __init__(self, blocks: int, ops: Sequence[str], hidden: int = 100, tanh_constant: float = 2.5,
                 temperature: float = 5.0, bidirectional: bool = True, init_std: float = 0.01) -> None:  # fmt: skip
        super().__init__()
        self.blocks = blocks
        self.ops = list(ops)
        self.hidden = hidden
        self.tanh_constant = tanh_constant
        self.temperature = temperature
        self.bidirectional = bidirectional
        #: tokens: input indices 0..B+1, then the ops, then the addition A
        self.op_offset = blocks + 2
        self.add_token = self.op_offset + len(self.ops)
        self.embedding = nn.Embedding(self.add_token + 1, hidden)
        self.encoder = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.width = width
        self.begin = nn.Parameter(torch.zeros(2, width))  # H^{c-2}, H^{c-1}
        self.router = nn.Linear(width, 1)
        self.input_attention = nn.Sequential(nn.Linear(2 * width, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.op_mutator = nn.Linear(width, len(self.ops))
        for parameter in self.parameters():
            nn.init.normal_(parameter, 0.0, init_std)

    # -- encoder ---------------------------------------------------------------------------------

    def tokens(self, cell: CellSpec) -> torch.Tensor:
        """The ``5B`` tokens of a cell string ``i1 i2 o1 o2 A`` per block."""
        out = []
        for i1, i2, o1, o2 in cell:
            out += [i1, i2, self.op_offset + self.ops.index(o1), self.op_offset + self.ops.index(o2), self.add_token]
        return torch.tensor(out, dtype=torch.long)

    def encode(self, cell: CellSpec) -> torch.Tensor:
        """Hidden states ``(B, 5, width)``: ``H^b_{i1}, H^b_{i2}, H^b_{o1}, H^b_{o2}, H^b_A`` per block."""
        if len(cell) != self.blocks:
            raise ValueError(f"controller for {self.blocks} blocks got a cell of {len(cell)}")
        embedded = self.embedding(self.tokens(cell)).unsqueeze(0)
        directions = 2 if self.bidirectional else 1
        h0 = self.begin[1].view(directions, 1, self.hidden).contiguous()  # the LSTM starts from H^{c-1}
        states, _ = self.encoder(embedded, (h0, torch.zeros_like(h0)))
        return states[0].view(self.blocks, 5, self.width)

    # -- decisions -------------------------------------------------------------------------------

    def shape_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Temperature, then ``tanh_constant * tanh`` (5.1.3; ENAS' order)."""
        logits = logits / self.temperature
        return self.tanh_constant * torch.tanh(logits)

    def block_logits(self, hidden: torch.Tensor, block: int, part: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Router logits of ``block`` and, for the chosen ``part``, the logits of its new value."""
        h = hidden[block]
        router = self.shape_logits(self.router(h[:4]).squeeze(-1))
        if part is None:
            return router, torch.empty(0)
        query = h[part]
        if part < 2:  # input mutator: previous cells (DARTS inputs 0, 1) then earlier blocks' outputs
            candidates = torch.cat([self.begin, hidden[:block, 4]], dim=0)
            pairs = torch.cat([candidates, query.expand_as(candidates)], dim=1)
            values = self.input_attention(pairs).squeeze(-1)
        else:
            values = self.op_mutator(query)
        return router, self.shape_logits(values)

    def sample(self, cell: CellSpec, generator: torch.Generator | None = None) -> tuple[list[Mutation], list[Decision]]:
        """One mutation per block (Algorithm 2), sampled from the controller's distributions."""
        with torch.no_grad():
            hidden = self.encode(cell)
            mutations, decisions = [], []
            for b in range(self.blocks):
                router, _ = self.block_logits(hidden, b, None)
                part_probs = F.softmax(router, dim=-1)
                part = int(torch.multinomial(part_probs, 1, generator=generator))
                _, values = self.block_logits(hidden, b, part)
                value_probs = F.softmax(values, dim=-1)
                value = int(torch.multinomial(value_probs, 1, generator=generator))
                decisions.append(Decision(part_probs, part, value_probs, value))
                mutations.append(Mutation(b, PARTS[part], value if part < 2 else self.ops[value]))
        return mutations, decisions

    def log_prob(self, cell: CellSpec, mutations: Sequence[Mutation]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``mutations`` (one per block) on ``cell`` and the entropy of the decisions."""
        hidden = self.encode(cell)
        log_prob, entropy = torch.zeros(()), torch.zeros(())
        for m in sorted(mutations, key=lambda m: m.block):
            part = PARTS.index(m.part)
            router, values = self.block_logits(hidden, m.block, part)
            value = int(m.value) if part < 2 else self.ops.index(str(m.value))
            for logits, chosen in ((router, part), (values, value)):
                log_probs = F.log_softmax(logits, dim=-1)
                log_prob = log_prob + log_probs[chosen]
                entropy = entropy - (log_probs.exp() * log_probs).sum()
        return log_prob, entropy


def reward_of(fitness: float) -> float:
    """``tan(f * pi / 2)`` (section 4.3, after EAS [3]); ``f`` is clipped to [0, 0.999] (tan explodes at 1)."""
    f = min(max(float(fitness), 0.0), 0.999)
    return math.tan(f * math.pi / 2)


class ControllerTrainer:
    """REINFORCE for :class:`MutationController`: Adam (lr 0.001), entropy bonus, moving-average baseline.

    The paper's entropy weight is 0.1 (5.1.3). Departure (default 0.01): at search fidelity the
    fitness is a few hundredths and its differences thousandths, so 0.1 x the entropy (several
    nats) outweighed any fitness difference by more than 100x (issue 14); pass 0.1 for the paper.
    """

    def __init__(self, controller: MutationController, lr: float = 1e-3, entropy_weight: float = 0.01,
                 baseline_decay: float = 0.95) -> None:  # fmt: skip
        self.controller = controller
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.baseline: float | None = None
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr)

    def update(self, episodes: Sequence[tuple[CellSpec, Sequence[Mutation], float]]) -> dict[str, float]:
        """One policy-gradient step on ``(parent cell, mutations, child fitness)`` episodes."""
        if not episodes:
            return {}
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros(())
        rewards, advantages = [], []
        for cell, mutations, fitness in episodes:
            log_prob, entropy = self.controller.log_prob(cell, mutations)
            reward = reward_of(fitness) + self.entropy_weight * float(entropy.detach())
            baseline = 0.0 if self.baseline is None else self.baseline
            advantage = reward - baseline
            loss = loss - log_prob * advantage
            self.baseline = reward if self.baseline is None else (
                self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward)  # fmt: skip
            rewards.append(reward)
            advantages.append(advantage)
        (loss / len(episodes)).backward()
        self.optimizer.step()
        return {"reward": sum(rewards) / len(rewards), "advantage": sum(advantages) / len(advantages),
                "baseline": float(self.baseline)}  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
