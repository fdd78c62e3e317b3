"""IAC genotypes (seed 004): four base U-Nets with the paper's backbones and one implant each.

Bases (section III-A: "we replace the base architecture with different backbones, such as
EfficientNetV2, ConvNeXt, MobileNetV3 and others, while keeping the U-shaped structure intact"),
segmentation 3 -> 1 at 256x256. Decoder widths, deepest block first:

- resnet18, efficientnetv2_s: [256, 128, 64, 32, 16], smp's U-Net default, so the bases compare
  with the ``smp-unet-*`` baselines;
- mobilenetv3_large_100: [128, 64, 40, 24, 16], the encoder's own widths at each stride (112 ->
  128, 40, 24, 16), keeping the light encoder's decoder light;
- convnext_tiny (first feature at stride 4, so two skip-free x2 blocks end the decoder):
  [384, 192, 96, 48, 24], the encoder widths at strides 16, 8, 4, then halving.

Implants carry the DARTS_V2 normal cell as a **stand-in** until the ``iac`` searcher (stage II,
PC-DARTS on the frozen base) provides searched cells; 16 channels per cell node.
"""

from __future__ import annotations

from genotypes_foundation import DARTS_V2, SEG_TASK  # sibling module; make_genotypes.py runs from scripts/

from nasseg.zoo.genotype import Genotype

BASES: dict[str, list[int]] = {
    "resnet18": [256, 128, 64, 32, 16],
    "mobilenetv3_large_100": [128, 64, 40, 24, 16],
    "efficientnetv2_s": [256, 128, 64, 32, 16],
    "convnext_tiny": [384, 192, 96, 48, 24],
}
CELL_CHANNELS = 16


def base_unet(
    encoder: str, decoder_channels: list[int], name: str | None = None, source: str | None = None
) -> Genotype:
    """The Stage I base U-Net with a timm encoder, or the plain U-Net encoder for ``encoder="unet"``."""
    spec = encoder if encoder == "unet" else f"timm:{encoder}"
    return Genotype.from_dict(
        {
            "name": name or f"iac-base-{encoder}",
            "family": "iac-unet",
            "task": SEG_TASK,
            "arch": {"base": {"encoder": spec, "decoder_channels": decoder_channels}},
            "provenance": {
                "source": source
                or f"IAC (Benedykciuk et al., seed 004) stage I base U-Net with a timm {encoder} encoder "
                "(features_only), upsample-concatenate-double-conv decoder"
            },
        }
    )


def darts_v2_implant(base: Genotype, encoder: str) -> Genotype:
    """An implant of ``base`` with the DARTS_V2 normal cell in every skip connection (stand-in)."""
    implant = Genotype.from_darts(
        DARTS_V2,
        family="iac-unet",
        name=f"iac-{encoder}-darts-v2",
        task=SEG_TASK,
        base={"model": base.name, "arch_hash": base.arch_hash},
        cell_channels=CELL_CHANNELS,
    )
    return implant.replace(
        provenance={
            "source": f"IAC (seed 004) implant of {base.name}; the cell is a STAND-IN: the DARTS_V2 normal cell "
            "(Liu et al., DARTS, ICLR 2019), not an IAC-searched cell, until the iac searcher provides one"
        }
    )


def genotypes() -> list[Genotype]:
    out = []
    for encoder, decoder_channels in BASES.items():
        base = base_unet(encoder, decoder_channels)
        out += [base, darts_v2_implant(base, encoder)]
    plain = "the plain U-Net encoder (Ronneberger et al. 2015, the IAC paper's 'Base' backbone)"
    out += [
        base_unet(
            "unet", [512, 256, 128, 64], "iac-base-unet", f"IAC stage I base U-Net with {plain}, widths 64..1024"
        ),
        base_unet(
            "unet",
            [64, 32, 16, 8],
            "iac-base-unet-small",
            f"IAC stage I base U-Net with {plain} at widths 8..128: trains on a CPU in minutes (the demo's model)",
        ),
    ]
    return out
