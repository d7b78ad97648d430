"""Write the frozen reference .vqi files (run once per released format version).

    .venv/bin/python tests/data/reference/make_reference.py

Every file here was written by a released encoder and must decode, in every
later version, to exactly the pixels stored beside it (``<name>.png``,
lossless) -- tests/test_reference.py checks that.  The script never replaces
an existing file: the files of an earlier format version are history, not
output.  A new format version adds new files under a new prefix (``v1.1-``,
...).

The images are crops of tests/data/sample.png (a Kodak photo) in every
channel layout, with every index layout and coder of the version, k from 2
to 300 (so 1- to 9-bit indices), and one file that carries an ICC profile.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import vqcodec  # noqa: E402
from vqcodec import container  # noqa: E402



def prefix(coder: str | None, block: tuple[int, int] = (1, 1)) -> str:
    """v<version>-: the version the encoder stamps on such a file (spec §2.1)."""
    from vqcodec import coders

    version = max((1, 2) if block != (1, 1) else (1, 0), coders.by_name(coder).version if coder else (1, 0))
    return "v{}.{}-".format(*version)


def crops() -> dict[str, np.ndarray]:
    rgb = np.asarray(Image.open(HERE.parent / "sample.png").convert("RGB"))[100:164, 200:296]
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    yy, xx = np.mgrid[:64, :96]
    alpha = np.clip((xx * 255) // 95 + (yy % 8 == 0) * 40, 0, 255).astype(np.uint8)
    alpha[:8, :8] = 0  # fully transparent corner
    return {
        "l": grey,
        "la": np.dstack([grey, alpha]),
        "rgb": rgb,
        "rgba": np.dstack([rgb, alpha]),
    }


CASES = [  # (image, k, layout, coder)
    ("l", 2, "packed", "zstd"),
    ("l", 16, "stripes", "bzip2"),
    ("la", 64, "bytes", "zstd"),
    ("rgb", 16, "packed", "zstd"),
    ("rgb", 16, "bytes", "bzip2"),
    ("rgb", 256, "stripes", "bzip2"),
    ("rgb", 256, "stripes", "zstd"),
    ("rgb", 300, "packed", "bzip2"),
    ("rgb", 300, "stripes", "zstd"),
    ("rgba", 100, "stripes", "bzip2"),
    ("rgba", 5, "bytes", "zstd"),
    # format 1.1: index coder 2, the context model (layout 1, k <= 256)
    ("l", 2, "bytes", "ctx"),
    ("la", 64, "bytes", "ctx"),
    ("rgb", 256, "bytes", "ctx"),
    ("rgba", 100, "bytes", "ctx"),
    # format 1.3: index coder 3, candidates under a context map (layout 1, k <= 256)
    ("l", 16, "bytes", "cand"),
    ("la", 64, "bytes", "cand"),
    ("rgb", 256, "bytes", "cand"),
    ("rgba", 100, "bytes", "cand"),
]

BLOCK_CASES = [  # format 1.2: block vectors (§3.1), in every channel layout and with each coder
    ("l", 16, "packed", "zstd", (2, 2)),
    ("la", 32, "stripes", "bzip2", (3, 2)),
    ("rgb", 64, "bytes", "ctx", (2, 2)),
    ("rgba", 100, "bytes", "ctx", (4, 4)),
    ("rgb", 64, "bytes", "cand", (2, 2)),  # format 1.3: coder 3 over a map of blocks
]


def main() -> None:
    images = crops()
    manifest_path = HERE / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name, k, layout, coder in CASES:
        stem = f"{prefix(coder)}{name}-k{k}-{layout}-{coder}"
        write(stem, images[name], manifest, k=k, layout=layout, coder=coder)
    for name, k, layout, coder, block in BLOCK_CASES:
        stem = f"{prefix(coder, block)}{name}-k{k}-{layout}-{coder}-block{block[0]}x{block[1]}"
        write(stem, images[name], manifest, k=k, layout=layout, coder=coder, block=block)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = Image.fromarray(images["rgb"])
    src.info["icc_profile"] = icc
    write(f"{prefix(None)}rgb-k32-icc", src, manifest, k=32, coder="bzip2")
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def write(stem: str, image, manifest: dict, **options) -> None:
    vqi, png = HERE / f"{stem}.vqi", HERE / f"{stem}.png"
    if vqi.exists():
        print(f"kept {vqi.name} (reference files are never rewritten)")
        return
    data = vqcodec.encode(image, **options)
    decoded = vqcodec.decode(data)
    pil = vqcodec.decode_image(data)
    pil.save(png, optimize=True)  # the expected pixels, lossless (and the ICC profile)
    vqi.write_bytes(data)
    header = container.read_header(data)[1]
    assert stem.startswith("v{}.{}-".format(*container.read_header(data)[0])), stem
    manifest[stem] = {
        "format": "{}.{}".format(*container.read_header(data)[0]),
        "written_by": f"vqcodec {vqcodec.__version__}",
        "shape": list(decoded.shape),
        "k": header.k,
        "index_layout": header.index_layout,
        "index_coder": header.index_coder,
        "icc_profile": "icc_profile" in pil.info,
    }
    if header.block != (1, 1):
        manifest[stem]["block"] = list(header.block)
    print(f"wrote {vqi.name} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
