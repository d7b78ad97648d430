"""What a sweep shows: per-k means (:func:`summarize`), the text table, CSV, JSON and the plot."""

from __future__ import annotations

import io
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict

from ..metrics import json_ready
from .codecs import LOSSY, PNGQUANT_MAX_K, STORES, label
from .rows import COLUMNS
from .sweep import Result

RATIO_TO = ("pngquant", *STORES)  # the per-image byte ratio vqcodec / each of these is reported


def summarize(result: Result) -> list[dict]:
    """Per k and codec, means over images: bpp, PSNR, SSIM, throughput and more.

    ``bytes`` and SSIM are plain means; ``bpp`` is pooled, all bits over all
    pixels (a plain mean of bpp would let a 1x1 image's 760 bpp outweigh a
    folder of photos; on images of one size the two are equal); PSNR is the
    mean over the images that are not reproduced exactly (``lossless``
    counts those; ``inf`` if all are); MP/s is total megapixels / total
    seconds; ``vqi_over_<codec>`` (pngquant and the lossless stores) is the
    mean of the per-image size ratios; ``not_reached`` counts lossy rows whose
    quality 100 fell short of vqcodec's PSNR.
    """
    out = []
    for k in result.ks:
        entry: dict = {"k": k}
        at_k = [r for r in result.rows if r.k == k]
        for name in result.codecs():
            rows = [r for r in at_k if r.codec == name]
            if not rows:
                continue
            pixel_count = sum(r.width * r.height for r in rows)
            mp = pixel_count / 1e6
            entry[name] = {
                "images": len(rows),
                "bytes": statistics.fmean(r.bytes for r in rows),
                "bpp": 8 * sum(r.bytes for r in rows) / pixel_count,
                "psnr": _mean_finite([r.psnr for r in rows]),
                "blurred_psnr": _mean_finite([r.blurred_psnr for r in rows]),
                "lossless": sum(1 for r in rows if r.psnr == math.inf),
                "ssim": statistics.fmean(r.ssim for r in rows),
                "encode_mps": mp / sum(r.encode_s for r in rows),
                "decode_mps": mp / sum(r.decode_s for r in rows),
            }
            if name in LOSSY:
                entry[name]["not_reached"] = sum(1 for r in rows if r.reached is False)
                entry[name]["quality"] = statistics.fmean(r.quality for r in rows)
        vq = {r.image: r for r in at_k if r.codec == "vqcodec"}
        for other in RATIO_TO:
            ratios = [vq[r.image].bytes / r.bytes for r in at_k if r.codec == other and r.image in vq]
            if ratios:
                entry[f"vqi_over_{other}"] = statistics.fmean(ratios)
        out.append(entry)
    return out


def _mean_finite(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.inf


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


Column = tuple[str, str, int, Callable[[dict], str]]  # (group, header, width, getter)


def _get(name: str, key: str, spec: str) -> Callable[[dict], str]:
    return lambda e: _fmt(e[name][key], spec) if name in e else "-"


def _columns(result: Result) -> list[Column]:
    have = set(result.measured())
    cols: list[Column] = [("", "k", 5, lambda e: str(e["k"]))]
    cols += [
        ("vqcodec", "bpp", 7, _get("vqcodec", "bpp", ".3f")),
        ("vqcodec", "PSNR", 7, _psnr_cell("vqcodec")),
        ("vqcodec", "blurPSNR", 8, _get("vqcodec", "blurred_psnr", ".2f")),
        ("vqcodec", "SSIM", 6, _get("vqcodec", "ssim", ".4f")),
        ("vqcodec", "enc MP/s", 8, _get("vqcodec", "encode_mps", ".2f")),
        ("vqcodec", "dec MP/s", 8, _get("vqcodec", "decode_mps", ".1f")),
    ]
    for variant in result.variants:
        group = variant
        cols += [
            (group, "bpp", 7, _get(variant, "bpp", ".3f")),
            (group, "PSNR", 7, _psnr_cell(variant)),
            (group, "blurPSNR", 8, _get(variant, "blurred_psnr", ".2f")),
            (group, "SSIM", 6, _get(variant, "ssim", ".4f")),
        ]
    if "pngquant" in have:
        cols += [
            ("pngquant --nofs", "bpp", 7, _get("pngquant", "bpp", ".3f")),
            ("pngquant --nofs", "PSNR", 7, _psnr_cell("pngquant")),
            ("pngquant --nofs", "blurPSNR", 8, _get("pngquant", "blurred_psnr", ".2f")),
            ("pngquant --nofs", "vqi/pq", 6, lambda e: _fmt(e.get("vqi_over_pngquant"), ".3f")),
        ]
    if "png" in have:
        cols.append(("PNG", "bpp", 7, _get("png", "bpp", ".3f")))
    for name in LOSSY:
        if name in have:
            cols.append(("bpp at vqcodec's PSNR", label(name), 7, _lossy_cell(name)))
    short = {"jxl-lossless": "JXL", "webp-lossless": "WebP"}
    for name in STORES:
        if name in have:
            cols.append(("vqcodec's pixels, lossless", f"{short[name]} bpp", 8, _get(name, "bpp", ".3f")))
            cols.append(("vqcodec's pixels, lossless", f"vqi/{short[name]}", 8,
                         lambda e, name=name: _fmt(e.get(f"vqi_over_{name}"), ".3f")))
    return cols


def format_table(result: Result) -> str:
    """The text table: per-k means, the BD-rate lines and the notes."""
    summary = summarize(result)
    cols = _columns(result)
    lines = []
    n = len(result.images)
    modes = sorted({result.modes[i] for i in result.images})
    lines.append(f"vqcodec rd: {n} image{'s' if n != 1 else ''} ({', '.join(modes)}), "
                 f"k = {', '.join(map(str, result.ks))}; means over images")
    groups, sep = [], "  "
    i = 0
    while i < len(cols):
        group = cols[i][0]
        j = i
        while j < len(cols) and cols[j][0] == group:
            j += 1
        width = sum(c[2] for c in cols[i:j]) + len(sep) * (j - i - 1)
        last = j == len(cols)
        if not group:
            groups.append(" " * width)
        elif len(group) > width and last:  # the last label may run past the columns
            groups.append(" " + group)
        else:
            groups.append(group[:width].center(width))
        i = j
    heads = [c[1].rjust(c[2]) for c in cols]
    lines.append(sep.join(groups).rstrip())
    lines.append(sep.join(heads))
    for entry in summary:
        lines.append(sep.join(c[3](entry).rjust(c[2]) for c in cols))

    for test in ("vqcodec", *result.variants):
        bd = result.bd_rate_means(test)
        if not bd:
            continue
        lines.append("")
        if test == "vqcodec":
            lines.append("BD-rate of vqcodec against each baseline (bits for the same PSNR; "
                         "negative = vqcodec smaller), mean over images:")
        else:
            lines.append(f"BD-rate of {test} against vqcodec's defaults and each baseline (negative = "
                         "the variant smaller), mean over images:")
        for anchor, (mean, reason, values) in bd.items():
            tag = f"  vs {label(anchor):<16}"
            if mean is None:
                lines.append(f"{tag} n/a: {reason}")
            else:
                spread = (f" (per image {min(values):+.1f} % to {max(values):+.1f} %, "
                          f"{len(values)} of {n} images)" if len(values) > 1 else "")
                lines.append(f"{tag} {mean:+.1f} %{spread}")
    notes = _notes(result, summary)
    if notes:
        lines.append("")
        lines.extend(f"note: {note}" for note in notes)
    return "\n".join(lines)


def _psnr_cell(name: str) -> Callable[[dict], str]:
    def cell(entry: dict) -> str:
        if name not in entry:
            return "-"
        e = entry[name]
        mark = "+" if e["lossless"] and math.isfinite(e["psnr"]) else ""
        return _fmt(e["psnr"], ".2f") + mark
    return cell


def _lossy_cell(name: str) -> Callable[[dict], str]:
    def cell(entry: dict) -> str:
        if name not in entry:
            return "-"
        mark = "*" if entry[name]["not_reached"] else ""
        return _fmt(entry[name]["bpp"], ".3f") + mark
    return cell


def _notes(result: Result, summary: list[dict]) -> list[str]:
    notes = []
    if result.block != (1, 1):
        notes.append(f"vqcodec: vectors of {result.block[0]}x{result.block[1]} pixels "
                     "(a codebook of k blocks per image)")
    alpha = result.alpha_images()
    if alpha:
        notes.append(f"{len(alpha)} image(s) with alpha: PSNR and SSIM over premultiplied RGBA"
                     + ("; JPEG skipped on them (JPEG has no alpha)" if "jpeg" in result.baselines else ""))
    if result.icc_images:
        notes.append(f"{len(result.icc_images)} image(s) with an ICC profile: "
                     + ("left out of every codec's file (--strip), so the bytes compare pixels only"
                        if result.strip else "kept in every codec's file, as encode keeps it "
                        "(--strip leaves it out of all)"))
    for baseline, reason in result.unavailable.items():
        notes.append(f"{label(baseline)} absent: {reason}")
    if "pngquant" in result.measured() and any(k > PNGQUANT_MAX_K for k in result.ks):
        notes.append(f"pngquant: no rows for k > {PNGQUANT_MAX_K} (its maximum)")
    lossless = {label(name): [e["k"] for e in summary if name in e and e[name]["lossless"]
                              and math.isfinite(e[name]["psnr"])]
                for name in ("vqcodec", *result.variants, "pngquant")}
    lossless = {name: ks for name, ks in lossless.items() if ks}
    if lossless:
        where = "; ".join(f"{name} at k = {', '.join(map(str, ks))}" for name, ks in lossless.items())
        notes.append(f"+ some images are reproduced exactly ({where}): their infinite PSNR is "
                     "left out of the PSNR mean")
    short = {label(name): [e["k"] for e in summary if name in e and e[name]["not_reached"]]
             for name in LOSSY}
    short = {name: ks for name, ks in short.items() if ks}
    if short:
        where = "; ".join(f"{name} at k = {', '.join(map(str, ks))}" for name, ks in short.items())
        notes.append(f"* quality 100 did not reach vqcodec's PSNR on some images ({where}): these are "
                     "not at equal PSNR; the mean holds their quality-100 size (reached=false in CSV/JSON)")
    if any(name in result.measured() for name in LOSSY):
        notes.append("WebP/AVIF/JPEG: Pillow at the smallest quality (1-100) whose PSNR reaches "
                     "vqcodec's at that k")
    if any(name in result.measured() for name in STORES):
        notes.append("lossless stores of vqcodec's decoded pixels (checked exact): JPEG XL "
                     "cjxl -d 0 -e 9 (whole process), WebP lossless method 6 (Pillow)")
    notes.append("blurPSNR: PSNR after a Gaussian blur of sigma 1 pixel on both images (what "
                 "dithering is for)")
    if len({r.width * r.height for r in result.rows}) > 1:
        notes.append("bpp: all bits / all pixels of the images "
                     "(pooled; the images differ in pixel count)")
    notes.append("MP/s: total megapixels / total seconds; vqcodec in-process (encode once, "
                 "decode median of up to 5 runs)")
    return notes


def to_csv(result: Result) -> str:
    """Every row, with a header line; ``inf`` for a lossless PSNR, empty for None."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in result.rows:
        writer.writerow(["" if v is None else v for v in (getattr(row, c) for c in COLUMNS)])
    return out.getvalue()


def to_json(result: Result) -> str:
    """Strict JSON (non-finite numbers as null): rows, summary, BD-rates, skips, notes."""
    summary = summarize(result)
    per_image = result.bd_rates()

    def bd_document(test: str) -> dict:
        return {
            anchor: {
                "mean_percent": mean,
                "reason": reason,
                "per_image": {b.image: b.value for b in per_image if b.baseline == anchor and b.test == test},
            }
            for anchor, (mean, reason, _) in result.bd_rate_means(test).items()
        }

    document = {
        "ks": list(result.ks),
        "baselines": list(result.baselines),
        "measured_baselines": list(result.measured()),
        "variants": list(result.variants),
        "seed": result.seed,
        "block": f"{result.block[0]}x{result.block[1]}",
        "strip": result.strip,
        "images": result.images,
        "skipped": [asdict(s) for s in result.skipped],
        "unavailable": result.unavailable,
        "problems": result.problems,
        "rows": [row.as_dict() for row in result.rows],
        "summary": summary,
        "bd_rate": bd_document("vqcodec"),
        "variants_bd_rate": {variant: bd_document(variant) for variant in result.variants},
        "notes": _notes(result, summary),
    }
    return json.dumps(json_ready(document), indent=1, allow_nan=False) + "\n"


def plot_png(result: Result, /) -> bytes:
    """PSNR against bits per pixel, one curve per codec (means over images), as PNG bytes.

    Needs matplotlib (``pip install 'vqcodec[plot]'``); lossless PNG is drawn
    as a vertical line at its mean bits per pixel.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.add_subplot()
    summary = summarize(result)
    markers = {"pngquant": "s", "webp": "^", "avif": "v", "jpeg": "D", "jxl-lossless": "x", "webp-lossless": "+"}
    ours = ("vqcodec", *result.variants)
    for name in result.codecs():
        if name == "png":
            if name in summary[0]:
                ax.axvline(summary[0][name]["bpp"], color="grey", linestyle="--", label="PNG (lossless)")
            continue
        points = [(e[name]["bpp"], e[name]["psnr"], e["k"]) for e in summary
                  if name in e and math.isfinite(e[name]["psnr"])]
        if not points:
            continue
        x, y, ks = zip(*points)
        if name in ours:
            text = name
        elif name in LOSSY and any(e[name]["not_reached"] for e in summary if name in e):
            text = f"{label(name)} (quality 100 short of vqcodec's PSNR at some k)"
        elif name in LOSSY:
            text = f"{label(name)} at equal PSNR"
        elif name in STORES:
            text = f"{label(name)} of vqcodec's pixels"
        else:
            text = label(name)
        ax.plot(x, y, marker=markers.get(name, "o"), linewidth=2 if name in ours else 1.2, label=text)
        if name == "vqcodec":
            for xi, yi, k in points:
                ax.annotate(f"k={k}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    n = len(result.images)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)" + (" — premultiplied RGBA for alpha images" if result.alpha_images() else ""))
    ax.set_title(f"Rate–distortion, mean over {n} image{'s' if n != 1 else ''}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    out = io.BytesIO()
    fig.savefig(out, format="png", bbox_inches="tight")
    return out.getvalue()
