"""The architectures a run can name: each declared once, here; the config check, the
command line's help, the workflow schema and the model factory (flooding.models) read it.

Any other timm model name is accepted too (checked with timm.is_model when asked for).
Nothing here imports torch or timm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    name: str
    help: str
    # "mlp" (flooding.models.build_mlp, any input) or "timm" (built by timm; images only).
    family: str


ARCHS = {
    arch.name: arch
    for arch in (
        Architecture("mlp", "the authors' MLP (mlp_depth x mlp_width)", "mlp"),
        Architecture("resnet_tiny", "timm ResNet-18, one block a stage, few channels", "timm"),
        Architecture("resnet18", "timm ResNet-18", "timm"),
        Architecture("resnet34", "timm ResNet-34", "timm"),
        Architecture("resnet50", "timm ResNet-50", "timm"),
    )
}


def family(name: str) -> str:
    """The family of a registered architecture; any other name is a timm model."""
    arch = ARCHS.get(name)
    return arch.family if arch is not None else "timm"


def describe_archs() -> str:
    """e.g. "mlp, resnet_tiny, ... or a timm model name"."""
    return ", ".join(ARCHS) + " or a timm model name"
