"""``gdtools layers``: the network layers one can dream on, with their channels and stride.

    gdtools layers
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "layers",
        help="list the layers of the DeepDream network",
        description="List the layers of EfficientNet-Lite0 that `gdtools dream --layer` accepts, from "
                    "low (strokes, textures) through middle (eyes, patterns) to high (finer, subtler textures), with channels and stride.",
    )
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from gdtools.dream import layers

    table = layers()
    print(f"{'layer':<8} {'channels':>8} {'stride':>6}")
    for info in table:
        print(f"{info.name:<8} {info.channels:>8} {info.stride:>6}")
    return 0
