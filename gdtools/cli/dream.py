"""``gdtools dream``: DeepDream an image, a layer gallery, or a zoom animation.

    gdtools dream IN.jpg -o OUT.png [--layer block8] [--channels 3,17] [--guide G.jpg]
                  [--octaves 4] [--octave-scale 1.4] [--steps 10] [--step-size 1.5] [--jitter 32]
                  [--tile 512] [--max-side 1024] [--normalize mean_abs|laplacian] [--seed 0] [--quiet]
    gdtools dream IN.jpg --gallery -o gallery.png [--gallery-layers stem,block4,block9]
    gdtools dream IN.jpg --zoom-frames 60 -o frames/      (PNG frames and frames/zoom.gif)

The PNG written carries every parameter and the gdtools version in its metadata. Bad input (an
unreadable image, an unknown layer, a channel out of range) is one line on stderr and exit code 2.
The first Ctrl-C (or SIGTERM) finishes the step in progress, writes what was dreamed and exits 130 (143).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from pathlib import Path

from gdtools.errors import InputError


def _names_an_image_file(path: str) -> bool:
    """Whether ``path`` (not an existing folder) ends in an image extension Pillow knows (.webp,
    .tif, .bmp as well as .png and .jpg): given to --zoom-frames, which wants a folder, it was made
    a folder called out.webp."""
    from PIL import Image

    return not os.path.isdir(path) and Path(path).suffix.lower() in Image.registered_extensions()


def _comma_list(flag: str, text: str, example: str) -> list[str]:
    """The items of a comma-separated option; an empty one (``3,,4``, ``3,``) is refused, not skipped."""
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise InputError(f"{flag} is empty; give e.g. {example}")
    if not all(items):
        raise InputError(f"{flag} {text!r} has an empty item; give e.g. {example}")
    return items


def _channel_list(text: str) -> list[int]:
    items = _comma_list("--channels", text, "3,17")
    try:
        channels = [int(item) for item in items]
    except ValueError:
        raise InputError(f"--channels must be comma-separated integers such as 3,17, got {text!r}") from None
    repeated = next((c for c in channels if channels.count(c) > 1), None)
    if repeated is not None:  # (the library's message advises weighing objectives, which no option does)
        raise InputError(f"--channels {text!r} lists channel {repeated} more than once; give each channel once")
    return channels


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "dream",
        help="DeepDream an image with a pretrained network",
        description="Change an image by gradient ascent so that a layer of EfficientNet-Lite0 sees "
                    "more of what it already sees. Low layers paint strokes, middle layers patterns "
                    "and eye-like shapes, high layers subtler, finer textures (see `gdtools layers`).",
    )
    parser.add_argument("image", metavar="IN", help="input image (JPEG, PNG, ...)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output image (PNG keeps the parameters), or a directory with --zoom-frames")
    parser.add_argument("--layer", help="layer to dream on (default block8)")
    parser.add_argument("--channels", metavar="C1,C2", help="only these channels of the layer")
    parser.add_argument("--guide", metavar="IMAGE", help="pull the image's features towards this image's")
    parser.add_argument("--octaves", type=int, default=4, help="number of scales (default 4)")
    parser.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (1.4)")
    parser.add_argument("--steps", type=int, default=10, help="gradient steps per octave (default 10)")
    parser.add_argument("--step-size", type=float, default=1.5,
                        help="mean change of a pixel value (0..255) per step (default 1.5)")
    parser.add_argument("--jitter", type=int, default=32, help="largest random roll in pixels (default 32)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile side; one compilation per size (512, or the image's longer side "
                             "rounded up to a multiple of 32 when that is smaller)")
    parser.add_argument("--max-side", type=int, default=1024,
                        help="shrink the input so its longer side is at most this (default 1024)")
    parser.add_argument("--normalize", default="mean_abs", choices=("mean_abs", "laplacian"),
                        help="gradient normalisation (default mean_abs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter (default 0)")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="the network's number format (float32)")
    parser.add_argument("--gallery", action="store_true", help="dream at a range of layers, one labelled grid")
    parser.add_argument("--gallery-layers", metavar="L1,L2",
                        # gdtools.dream.layer_gallery.GALLERY_LAYERS (not imported: it imports JAX; a test
                        # holds the two equal)
                        help="layers of the gallery (default: stem,block2,block4,block6,block9,block12,block15)")
    parser.add_argument("--zoom-frames", type=int, metavar="N", help="write N zoom frames and a GIF into OUT/")
    parser.add_argument("--zoom", type=float, help="zoom factor between --zoom-frames frames (1.05)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    parser.set_defaults(func=run)
    return parser


def _objective(args, guide_image):
    from gdtools.dream import objectives
    from gdtools.dream.deepdream import DEFAULT_LAYER

    layer = DEFAULT_LAYER if args.layer is None else args.layer
    if args.channels is not None:
        return objectives.channels(layer, _channel_list(args.channels))
    if guide_image is not None:
        return objectives.guide(layer, guide_image, label=args.guide)  # the path as given
    return objectives.layer(layer)


#: DreamSettings' argument names, as the options that set them.
_OPTIONS = {"octave_scale": "--octave-scale", "step_size": "--step-size", "max_side": "--max-side",
            "octaves": "--octaves", "steps": "--steps", "jitter": "--jitter", "tile": "--tile",
            "seed": "--seed", "normalize": "--normalize", "precision": "--precision"}


def _option_names(message: str) -> str:
    """A library message about an argument, naming the option instead (``step_size must be`` ->
    ``--step-size must be``)."""
    for name, option in _OPTIONS.items():
        message = re.sub(rf"(?<![\w-]){name}(?= must| has| is| should| >)", option, message)
    return message


def _check_combinations(args) -> None:
    """Refuse options that the chosen mode would ignore."""
    if args.gallery and args.zoom_frames is not None:
        raise InputError("--gallery and --zoom-frames cannot be combined; choose one")
    if args.gallery:
        for flag, value in (("--layer", args.layer), ("--channels", args.channels), ("--guide", args.guide)):
            if value is not None:
                raise InputError(f"--gallery dreams each of its layers (--gallery-layers) with the layer "
                                 f"objective; {flag} cannot be combined with it")
    if args.gallery_layers is not None and not args.gallery:
        raise InputError("--gallery-layers chooses the layers of --gallery; add --gallery")
    if args.zoom is not None and args.zoom_frames is None:
        raise InputError("--zoom sets the zoom between the frames of --zoom-frames; add --zoom-frames")
    if args.channels is not None and args.guide is not None:
        raise InputError("--channels and --guide cannot be combined; choose one")


def run(args) -> int:
    from gdtools.cli.interrupt import stop_on_interrupt
    from gdtools.cli.progress import progress_bar
    from gdtools.dream import efficientnet, images, weights
    from gdtools.dream.compilation_cache import enable_compilation_cache
    from gdtools.dream.deepdream import DreamSettings, Dreamer, fitting_tile
    from gdtools.dream.layer_gallery import GALLERY_LAYERS, check_layers, gallery
    from gdtools.dream.output_files import check_folder, check_image_file, check_image_format
    from gdtools.dream.zoom import (DEFAULT_ZOOM, GIF_NAME, check_zoom, frame_file, is_written_by_zoom,
                                    remove_stale_frames, save_gif, zoom_frames)

    _check_combinations(args)
    zoom = DEFAULT_ZOOM if args.zoom is None else args.zoom
    if args.zoom_frames is not None:
        check_zoom(frames=args.zoom_frames, zoom=zoom, flags=("--zoom-frames", "--zoom"))
    if args.zoom_frames is not None and _names_an_image_file(args.output):
        raise InputError(f"with --zoom-frames, -o is the folder for the frames and zoom.gif, not an image "
                         f"file: got {args.output!r}; give e.g. -o frames/")
    try:
        settings = DreamSettings(octaves=args.octaves, octave_scale=args.octave_scale, steps=args.steps,
                                 step_size=args.step_size, jitter=args.jitter,
                                 tile=DreamSettings.tile if args.tile is None else args.tile,
                                 normalize=args.normalize, seed=args.seed, precision=args.precision)
    except InputError as exc:  # the library names its arguments; the CLI user set the options
        raise InputError(_option_names(str(exc))) from None
    output = Path(args.output)
    if args.zoom_frames is None:
        for role, path in (("input", args.image), ("guide", args.guide)):
            if path is not None and output.resolve() == Path(path).resolve():
                raise InputError(f"-o {args.output!r} is the {role} image: the dream would replace it; "
                                 f"give another file")
        check_image_file("-o", args.output)
        check_image_format("-o", args.output)
    else:
        check_folder("-o", args.output)
        for role, path in (("input", args.image), ("guide", args.guide)):
            if path is not None and is_written_by_zoom(args.output, path):
                raise InputError(f"the {role} image {path!r} is a file the zoom writes or removes in -o "
                                 f"{args.output!r}; give another folder, or copy the {role} out of it first")
    try:
        image = images.as_read(images.load_image(args.image, max_side=args.max_side))
    except InputError as exc:
        raise InputError(_option_names(str(exc))) from None
    # no larger than the image (padding a small image up to 512 is wasted work), whether --tile was
    # given or not: the Dreamer fits it so, and the PNG records the tile used
    settings = dataclasses.replace(settings, tile=fitting_tile(settings.tile, image.shape))
    guide_image = (images.as_read(images.load_image(args.guide, max_side=args.max_side, what="guide image"))
                   if args.guide else None)
    # every layer and channel is checked before anything is dreamed or created
    params = weights.pretrained_params()
    if args.gallery:
        names = GALLERY_LAYERS if args.gallery_layers is None else _comma_list(
            "--gallery-layers", args.gallery_layers, "stem,block4,block9")
        check_layers(names, params)
    else:
        objective = _objective(args, guide_image)
        objective.check(efficientnet.layer_table(params))
    enable_compilation_cache()
    started = time.perf_counter()
    steps_per_dream = settings.octaves * settings.steps
    where = {}  # the last step dreamed, for the message of an interrupted run

    def note(progress, **more):
        where.update(more, octave=f"{progress.octave + 1}/{progress.octaves}",
                     step=f"{progress.step + 1}/{progress.steps}")

    if args.gallery:
        with stop_on_interrupt("dream", saving="the layers dreamed so far") as stop, \
                progress_bar(len(names) * steps_per_dream, desc="gallery", quiet=args.quiet, unit="step") as bar:
            def on_step(name, progress):
                bar.set_description(f"gallery {name}", refresh=False)
                bar.update()
                note(progress, layer=name)
                return stop.now()

            grid = gallery(image, layers=names, settings=settings, params=params, callback=on_step)
        done = list(names[: names.index(where["layer"]) + 1]) if stop.honoured else list(names)
        metadata = {**Dreamer.describe_settings(settings), "gallery_layers": done, "input": args.image,
                    "max_side": args.max_side, **_interrupted(stop, where)}
        images.save_image(output, images.to_uint8(grid), metadata=metadata)
        written = f"{output} ({grid.shape[1]}x{grid.shape[0]}"
    elif args.zoom_frames is not None:
        output.mkdir(parents=True, exist_ok=True)
        frames = []
        with stop_on_interrupt("dream", saving="the frames dreamed so far") as stop, \
                progress_bar(args.zoom_frames * steps_per_dream, desc="zoom", quiet=args.quiet, unit="step") as bar:
            def on_step(frame, progress):
                bar.set_description(f"frame {frame + 1}/{args.zoom_frames}", refresh=False)
                bar.update()
                note(progress, frame=f"{frame + 1}/{args.zoom_frames}")
                return stop.now()

            dreamer_metadata = None
            for k, frame in enumerate(zoom_frames(image, objective, frames=args.zoom_frames, zoom=zoom,
                                                  settings=settings, params=params, callback=on_step)):
                if dreamer_metadata is None:
                    dreamer_metadata = {**Dreamer.describe_settings(settings), "objective": objective.describe()}
                pixels = images.to_uint8(frame)
                images.save_image(frame_file(output, k), pixels,
                                  metadata={**dreamer_metadata, "frame": k, "zoom": zoom,
                                            # the run's --seed (what reproduces the run), and
                                            # the one this frame's dream used
                                            "seed": settings.seed, "frame_seed": settings.seed + k,
                                            "input": args.image,
                                            "max_side": args.max_side,
                                            **_interrupted(stop, where)})
                frames.append(pixels)
        save_gif(output / GIF_NAME, frames)
        stale = remove_stale_frames(output, keep=len(frames))
        if stale:  # said even with --quiet: files in the user's folder were deleted
            print(f"gdtools dream: removed {stale} frame{'s' if stale > 1 else ''} of an earlier, longer run "
                  f"from {args.output!r}", file=sys.stderr)
        written = f"{len(frames)} frames and zoom.gif in {output} ({image.shape[1]}x{image.shape[0]}"
    else:
        dreamer = Dreamer(objective, settings=settings, params=params)
        with stop_on_interrupt("dream", saving="the dream so far") as stop, \
                progress_bar(steps_per_dream, desc="dream", quiet=args.quiet, unit="step") as bar:
            def on_step(progress):
                bar.set_description(f"octave {progress.octave + 1}/{progress.octaves}", refresh=False)
                bar.update()
                note(progress)
                return stop.now()

            result = dreamer(image, callback=on_step)
        images.save_image(output, images.to_uint8(result), metadata={**dreamer.metadata(), "input": args.image,
                                                                     "max_side": args.max_side,
                                                                     **_interrupted(stop, where)})
        written = f"{output} ({result.shape[1]}x{result.shape[0]}"
    if not args.quiet:  # the files' sizes, and how long it took
        print(f"wrote {written}, {time.perf_counter() - started:.1f} s)")
    if stop.honoured:
        print(f"gdtools dream: interrupted; what was written stops at {_where(where)}", file=sys.stderr)
        return stop.exit_code
    return 0


def _where(where: dict) -> str:
    return ", ".join(f"{name} {value}" for name, value in where.items())


def _interrupted(stop, where: dict) -> dict:
    """PNG metadata that says where an interrupted dream stopped (nothing for a finished one)."""
    return {"interrupted_at": _where(where)} if stop.honoured else {}
