"""DeepDream with gdtools' Python API, in a page.

    python examples/deepdream.py [--out out] [--layer block8] [--max-side 384]

Dreams scikit-image's sample photo of a cat (Chelsea) at one layer of EfficientNet-Lite0, writes
``deepdream.png`` (with every parameter in its PNG metadata) into ``--out``, and prints what the
network sees in the image before and after. Well under two minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage import data

import gdtools as gd


def objective_for(layer: str):
    """A layer's energy plus a little of two of its channels (3 and 17, or those of them the layer
    has: ``block0`` has only 16). The objective composes like Lucid's."""
    widths = {info.name: info.channels for info in gd.dream.layers()}
    if layer not in widths:
        raise SystemExit(f"unknown layer {layer!r}; layers are: {', '.join(widths)}")
    chosen = [c for c in (3, 17) if c < widths[layer]]
    return gd.dream.layer(layer) + 0.5 * gd.dream.channels(layer, chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="directory for deepdream.png (default out/)")
    parser.add_argument("--layer", default="block8", help="layer to dream on (see `gdtools layers`)")
    parser.add_argument("--max-side", type=int, default=384, help="image size (default 384 px)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.max_side < 32:
        parser.error(f"--max-side must be at least 32 px, got {args.max_side}")
    objective = objective_for(args.layer)  # an unknown layer is said before any work is done
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--out {args.out!r} cannot be made a directory: {exc.strerror}")

    dream = gd.dream  # loaded on first use: `import gdtools` alone does not touch the network
    image = dream.images.fit_max_side(data.chelsea().astype(np.float32), args.max_side)
    print("the network sees:", ", ".join(f"{name} {p:.0%}" for _, name, p in dream.classify(image, top=3)))

    # tiles of 512 pixels, or of the image's side rounded up to 32 if smaller (384 for the sample),
    # as the Dreamer would fit them: given here, the PNG's metadata records the tile used
    tile = dream.deepdream.fitting_tile(512, image.shape)
    dreamer = dream.Dreamer(objective, octaves=4, octave_scale=1.4, steps=10, step_size=1.5, jitter=32,
                            tile=tile, seed=args.seed)
    started = time.perf_counter()
    steps = []
    result = dreamer(image, callback=steps.append)  # each octave's steps run through gd.minimize
    finest = [p for p in steps if p.octave == p.octaves - 1]
    print(f"dreamed {image.shape[1]}x{image.shape[0]} at {args.layer}: {len(steps)} steps in "
          f"{time.perf_counter() - started:.1f} s; objective over the last octave "
          f"{finest[0].objective:.1f} -> {finest[-1].objective:.1f}")
    print("now it sees:", ", ".join(f"{name} {p:.0%}" for _, name, p in dream.classify(result, top=3)))

    path = dream.save_image(out / "deepdream.png", result, metadata=dreamer.metadata())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
