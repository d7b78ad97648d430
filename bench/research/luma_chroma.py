"""Does a luma/chroma split pay for per-image block vectors? (issue 13: "where it pays")

    nice python bench/research/luma_chroma.py kodim03.png kodim05.png kodim07.png

Bytes over JPEG's at equal RGB PSNR (bench/block_bench.py's JPEG: the smallest
of 4:2:0 and 4:4:4 over qualities 1-100 that reaches the PSNR), geometric mean
over kodim03, 05 and 07 (December 2026, default encoder, rdo 0.6):

    rgb 2x2 k256                     1.057
    ycc 2x2 k256                     1.125   (the same vectors learned in YCbCr)
    Y 2x2 k256 + CbCr/2 2x2 k64      1.161   (luma 2x2; chroma at half resolution, 2x2 blocks)
    Y 2x2 k256 + CbCr/2 2x2 k256     1.144
    Y 2x2 k1024 + CbCr/2 2x2 k64     1.459
    Y 2x2 k256 + CbCr/2 1x1 k64      1.257

It does not pay per image: RGB 2x2 stays best, so no colour space is in the
format.  (The issue's probe found separate luma/chroma paying with *shared*
4x4 codebooks, whose bytes are not in the file.)
"""
import sys, numpy as np
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))  # bench/
from block_bench import jpeg_curve, jpeg_at
from PIL import Image
import vqcodec
from vqcodec import codec, metrics

def to_ycc(rgb):
    return np.asarray(Image.fromarray(rgb).convert('YCbCr'))
def to_rgb(ycc):
    return np.asarray(Image.fromarray(ycc, 'YCbCr').convert('RGB'))

out = {}
for name in sys.argv[1:]:
    px = np.asarray(Image.open(f'/work/shared/corpus/kodak/{name}').convert('RGB'))
    curve = jpeg_curve(px)
    ycc = to_ycc(px)
    h, w = px.shape[:2]
    def point(label, nbytes, rec):
        p = metrics.psnr(px, rec); j = jpeg_at(curve, p)
        out.setdefault(label, []).append(nbytes / j[0])
        print(name, label, nbytes, f"{p:.2f}", f"x{nbytes/j[0]:.3f}", flush=True)
    e = codec.encode_pixels(px, k=256, block=(2, 2))
    point("rgb 2x2 k256", len(e.data), e.reconstruct())
    # same vectors learned in YCbCr (a linear change of metric only)
    e = codec.encode_pixels(ycc, k=256, block=(2, 2))
    point("ycc 2x2 k256", len(e.data), to_rgb(e.reconstruct()))
    for ky, kc, cb in ((256, 64, (2, 2)), (256, 256, (2, 2)), (1024, 64, (2, 2)), (256, 64, (1, 1))):
        ey = codec.encode_pixels(ycc[:, :, 0], k=ky, block=(2, 2))
        # chroma at half resolution (2x2 means), as (Cb, Cr, 0) RGB so no channel is read as alpha
        hh, ww = -(-h // 2) * 2, -(-w // 2) * 2
        c = np.pad(ycc[:, :, 1:].astype(np.float64), ((0, hh - h), (0, ww - w), (0, 0)), mode='edge')
        c = np.rint(c.reshape(hh // 2, 2, ww // 2, 2, 2).mean((1, 3))).astype(np.uint8)
        c3 = np.dstack([c, np.zeros(c.shape[:2], np.uint8)])
        ec = codec.encode_pixels(c3, k=kc, block=cb)
        chroma = np.repeat(np.repeat(ec.reconstruct()[:, :, :2], 2, 0), 2, 1)[:h, :w]
        rec = to_rgb(np.dstack([ey.reconstruct()[:, :, 0], chroma]))
        point(f"Y 2x2 k{ky} + CbCr/2 {cb[0]}x{cb[1]} k{kc}", len(ey.data) + len(ec.data), rec)
for label, v in out.items():
    print(f"{label:32s} {np.exp(np.mean(np.log(v))):.3f}")
