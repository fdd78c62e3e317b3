"""The U-Net image-translator GA (seed 002): space, genetic operators, strategy, translation evaluator.

``UNetSpace`` (widths S1 for L encoder levels, L - 1 skip bits), ``UNetGAStrategy`` (roulette GA,
selection / crossover / mutation 0.2 / 0.7 / 0.1, elitism, f = 1 / (L_gen + gamma p)),
``UNetRandomStrategy`` (the random baseline with the same fitness) and ``TranslationEvaluator``
(pix2pix training with a PatchGAN). Segmentation candidates use
:class:`searchers.evaluators.SegmentationEvaluator` (its ``metrics["loss"]`` is L_gen).
"""

from nasseg.searchers.unet_ga.patchgan import PatchDiscriminator
from nasseg.searchers.unet_ga.space import PAPER_LAYERS, PAPER_WIDTHS, UNetSpace, code_key
from nasseg.searchers.unet_ga.strategy import UNetFitness, UNetGAStrategy, UNetRandomStrategy
from nasseg.searchers.unet_ga.translation import TranslationEvaluator, paired_root, paired_splits

__all__ = [
    "PAPER_LAYERS",
    "PAPER_WIDTHS",
    "PatchDiscriminator",
    "TranslationEvaluator",
    "UNetFitness",
    "UNetGAStrategy",
    "UNetRandomStrategy",
    "UNetSpace",
    "code_key",
    "paired_root",
    "paired_splits",
]
