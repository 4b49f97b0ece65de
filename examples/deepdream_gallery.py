"""The layer gallery of docs/deepdream.md: one photo dreamed at seven depths of the network.

    python examples/deepdream_gallery.py [--out docs/deepdream_gallery.png] [--max-side 256]

scikit-image's Chelsea (a cat; scikit-image's sample images are freely usable) dreamed with the
default settings at ``stem``, ``block2``, ``block4``, ``block6``, ``block9``, ``block12`` and
``block15``, in one labelled grid with the input first. Prints the time each layer took.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from skimage import data

from gdtools.dream import gallery, images
from gdtools.dream.deepdream import Dreamer, DreamSettings
from gdtools.dream.layer_gallery import GALLERY_LAYERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/deepdream_gallery.png")
    parser.add_argument("--max-side", type=int, default=256)
    parser.add_argument("--columns", type=int, default=4)
    args = parser.parse_args()
    image = images.fit_max_side(data.chelsea().astype(np.float32), args.max_side)
    settings = DreamSettings(tile=args.max_side)
    finished = {}  # when each layer's last step so far ended

    def on_step(layer, progress):
        finished[layer] = time.perf_counter()

    started = time.perf_counter()
    grid = gallery(image, layers=GALLERY_LAYERS, settings=settings, columns=args.columns, callback=on_step)
    previous = started
    for layer, end in finished.items():
        print(f"  {layer}: {end - previous:.1f} s")
        previous = end
    metadata = {**Dreamer.describe_settings(settings), "gallery_layers": list(GALLERY_LAYERS),
                "input": "skimage.data.chelsea()", "max_side": args.max_side}
    images.save_image(args.out, grid, metadata=metadata)
    print(f"wrote {args.out}: {len(GALLERY_LAYERS)} layers in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
