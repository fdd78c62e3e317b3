"""AutoSegNet's controller: a 2-layer LSTM that emits the decisions of the space one by one.

Seed 000, section III-A and Fig. 5: "The RNN is a two-layer long short-term memory (LSTM) network";
"the searching order of the RNN controller is the downsampling layer, the bridge layer, the
upsampling layer, and the long skip connection"; "The LSTM module records the state of the
structure of the previous layers" -- every decision is fed back as the next LSTM input, so each
one is conditioned on all earlier ones through the LSTM state. Details the paper leaves open are
ENAS' (Pham et al. 2018, which the paper follows): a learned start input, one embedding and one
softmax head per decision kind (input, op, skip bit), uniform(-0.1, 0.1) initialisation, hidden
size 64. Training is REINFORCE (section IV-B: Adam, lr 0.0005) with ENAS' moving-average baseline
and entropy bonus (:class:`Reinforce`). :class:`UniformController` samples uniformly: the
benchmark's comparison and the ``--controller uniform`` ablation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasseg.searchers.autosegnet.space import AutoSegNetSpace, Decision

KINDS = ("input", "op", "skip")


@dataclass
class Sample:
    """One sampled (or scored) architecture: its actions, summed log-probability and entropy."""

    actions: list[int]
    log_prob: torch.Tensor
    entropy: torch.Tensor


class LSTMController(nn.Module):
    """2-layer LSTM over the space's decisions (see the module docstring).

    Args:
        space: gives the decision sequence (kinds and number of choices).
        hidden: LSTM width (ENAS: 64).
        num_layers: LSTM layers (the paper: 2).
        tanh_constant: ENAS' logit squashing ``c * tanh(logits)`` (``None``: off).
        temperature: logits are divided by it before squashing (``None``: 1).
    """

    def __init__(self, space: AutoSegNetSpace, hidden: int = 64, num_layers: int = 2,
                 tanh_constant: float | None = None, temperature: float | None = None) -> None:  # fmt: skip
        super().__init__()
        self.decisions: list[Decision] = list(space.decisions)
        self.hidden, self.num_layers = hidden, num_layers
        self.tanh_constant, self.temperature = tanh_constant, temperature
        sizes = {"input": space.max_inputs, "op": len(space.ops), "skip": 2}
        self.start = nn.Parameter(torch.zeros(1, 1, hidden))
        self.lstm = nn.LSTM(hidden, hidden, num_layers)
        self.embed = nn.ModuleDict({kind: nn.Embedding(sizes[kind], hidden) for kind in KINDS})
        self.heads = nn.ModuleDict({kind: nn.Linear(hidden, sizes[kind]) for kind in KINDS})
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -0.1, 0.1)

    def _logits(self, output: torch.Tensor, decision: Decision) -> torch.Tensor:
        logits = self.heads[decision.kind](output.reshape(1, -1))[0]
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        if decision.choices < logits.numel():  # a cell reads only h[t-1], h[t] and earlier cells
            mask = torch.arange(logits.numel(), device=logits.device) >= decision.choices
            logits = logits.masked_fill(mask, float("-inf"))
        return logits

    def run(self, actions: Sequence[int] | None = None, generator: torch.Generator | None = None
            ) -> tuple[Sample, list[torch.Tensor]]:  # fmt: skip
        """Sample (``actions=None``) or score ``actions``; also returns every decision's distribution."""
        state = None
        inputs = self.start
        chosen: list[int] = []
        log_probs, entropies, distributions = [], [], []
        for index, decision in enumerate(self.decisions):
            output, state = self.lstm(inputs, state)
            log_p = F.log_softmax(self._logits(output, decision), dim=-1)
            probs = log_p.exp()
            if actions is None:
                action = int(torch.multinomial(probs.detach(), 1, generator=generator))
            else:
                action = int(actions[index])
            chosen.append(action)
            log_probs.append(log_p[action])
            entropies.append(-(probs * log_p.nan_to_num(neginf=0.0)).sum())
            distributions.append(probs)
            inputs = self.embed[decision.kind](torch.tensor([[action]], device=self.start.device))
        sample = Sample(chosen, torch.stack(log_probs).sum(), torch.stack(entropies).sum())
        return sample, distributions

    def sample(self, generator: torch.Generator | None = None) -> Sample:
        """Sample one architecture (log-probability and entropy keep their graph for REINFORCE)."""
        return self.run(generator=generator)[0]

    def score(self, actions: Sequence[int]) -> Sample:
        """Log-probability and entropy of a given action sequence."""
        return self.run(actions)[0]

    def distributions(self, actions: Sequence[int]) -> list[torch.Tensor]:
        """The distribution of every decision when the earlier ones are ``actions`` (teacher forcing)."""
        with torch.no_grad():
            return self.run(actions)[1]


class UniformController(nn.Module):
    """Every decision uniform over its choices; no parameters (nothing to learn)."""

    def __init__(self, space: AutoSegNetSpace) -> None:
        super().__init__()
        self.decisions = list(space.decisions)

    def sample(self, generator: torch.Generator | None = None) -> Sample:
        actions = [int(torch.randint(d.choices, (1,), generator=generator)) for d in self.decisions]
        return self.score(actions)

    def score(self, actions: Sequence[int]) -> Sample:
        log_n = sum(math.log(d.choices) for d in self.decisions)
        return Sample(list(actions), torch.tensor(-log_n), torch.tensor(log_n))

    def distributions(self, actions: Sequence[int]) -> list[torch.Tensor]:
        return [torch.full((d.choices,), 1.0 / d.choices) for d in self.decisions]


def make_controller(kind: str, space: AutoSegNetSpace, **kwargs: Any) -> LSTMController | UniformController:
    """``lstm`` (the paper's) or ``uniform`` (random search over the same space)."""
    if kind == "lstm":
        return LSTMController(space, **kwargs)
    if kind == "uniform":
        return UniformController(space)
    raise ValueError(f"controller must be lstm or uniform, got {kind!r}")


class Reinforce:
    """REINFORCE with a moving-average baseline and an entropy bonus (ENAS, section 2.2).

    ``update(sample, reward)``: the baseline first moves towards the reward
    (``b <- decay * b + (1 - decay) * reward``, ENAS' order; it starts at the first reward), then
    the controller takes one Adam step on ``-(reward - b) * log_prob - entropy_weight * entropy``.
    Paper defaults: Adam lr 0.0005 (seed 000, IV-B); decay 0.99 and entropy weight 1e-4 are ENAS'.
    """

    def __init__(self, controller: nn.Module, lr: float = 5e-4, baseline_decay: float = 0.99,
                 entropy_weight: float = 1e-4) -> None:  # fmt: skip
        self.controller = controller
        params = list(controller.parameters())
        self.optimizer = torch.optim.Adam(params, lr=lr) if params else None
        self.baseline_decay, self.entropy_weight = baseline_decay, entropy_weight
        self.baseline: float | None = None

    def update(self, sample: Sample, reward: float) -> dict[str, float]:
        """One policy-gradient step on a sampled architecture's reward; returns what it did."""
        if self.baseline is None:
            self.baseline = reward
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        advantage = reward - self.baseline
        loss = -advantage * sample.log_prob - self.entropy_weight * sample.entropy
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return {"reward": reward, "baseline": self.baseline, "advantage": advantage, "loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict() if self.optimizer else None, "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
