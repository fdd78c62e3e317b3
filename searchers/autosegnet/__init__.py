"""AutoSegNet search (seed 000): LSTM controller, REINFORCE, ENAS shared weights, automatic depth.

``AutoSegNetSpace`` (decisions <-> genotype), ``LSTMController`` / ``UniformController`` and
``Reinforce`` (controller.py), ``SharedAutoSegNet`` (shared.py), ``AutoSegNetStrategy`` (strategy.py).
"""

from nasseg.searchers.autosegnet.controller import LSTMController, Reinforce, Sample, UniformController, make_controller
from nasseg.searchers.autosegnet.shared import SharedAutoSegNet, SharedLayer, batch_statistics
from nasseg.searchers.autosegnet.space import AutoSegNetSpace, Decision
from nasseg.searchers.autosegnet.strategy import AutoSegNetConfig, AutoSegNetStrategy

__all__ = [
    "AutoSegNetConfig",
    "AutoSegNetSpace",
    "AutoSegNetStrategy",
    "Decision",
    "LSTMController",
    "Reinforce",
    "Sample",
    "SharedAutoSegNet",
    "SharedLayer",
    "UniformController",
    "batch_statistics",
    "make_controller",
]
