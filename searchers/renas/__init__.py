"""RENAS (seed 001): tournament evolution with a reinforced mutation controller and parameter inheritance.

``space`` (the cell space on ``cellnet``), ``controller`` (the mutation controller and its REINFORCE
trainer), ``inheritance`` (copying a parent's parameters), ``evaluator`` (training children and the
classification proxy), ``evolution`` (Algorithm 1 and its ablations), ``report`` (plots).
"""

from nasseg.searchers.renas.controller import ControllerTrainer, MutationController, reward_of
from nasseg.searchers.renas.evaluator import RenasEvaluator
from nasseg.searchers.renas.evolution import RenasStrategy
from nasseg.searchers.renas.inheritance import inherit, parameter_groups
from nasseg.searchers.renas.space import PARTS, Mutation, RenasSpace

__all__ = [
    "PARTS",
    "ControllerTrainer",
    "Mutation",
    "MutationController",
    "RenasEvaluator",
    "RenasSpace",
    "RenasStrategy",
    "inherit",
    "parameter_groups",
    "reward_of",
]
