"""Prediction before the entropy coder: palette order + MED/up predictor -> zstd / bzip2.

    .venv/bin/python bench/research/explore7_prediction.py

Idea: order the codebook so that similar colours get nearby indices (a
greedy nearest-neighbour tour, or by luminance), predict each index from its
neighbours (PNG's up filter, or the MED predictor of LOCO-I on index
values), and code the residuals mod k with zstd-19 or bzip2-9.  Decoding
would be a vectorised cumulative sum: zstd speed, which is why it was tried.

Result (Kodak kodim01-08, rdo 0.6; size / the default encoder's size):
best variant tour + MED + zstd: 1.14 at k = 64, 1.21 at k = 256 (luminance
order and the up filter are worse still; bzip2 on residuals 1.23-1.33).
Prediction destroys the repeated contexts that bzip2's block sorting and
zstd's matches find in the raw index map: not taken.
"""
import sys, bz2, numpy as np, zstandard, glob
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[2]))
from vqcodec import pixels, quantize, rdo, packing, codec
def tour(cb):
    # greedy nearest-neighbour tour starting at the darkest colour
    c = cb.astype(float); n=len(c)
    left = set(range(n)); cur = int(np.argmin(c.sum(1))); order=[cur]; left.remove(cur)
    while left:
        L = np.array(sorted(left)); d = ((c[L]-c[cur])**2).sum(1); cur = int(L[np.argmin(d)]); order.append(cur); left.remove(cur)
    return np.array(order)
def lum_order(cb):
    return np.argsort(cb.astype(float) @ [0.299,0.587,0.114], kind='stable')
def med(idx):
    a = idx.astype(np.int32); L = np.zeros_like(a); U = np.zeros_like(a); UL=np.zeros_like(a)
    L[:,1:]=a[:,:-1]; U[1:]=a[:-1]; UL[1:,1:]=a[:-1,:-1]
    mx=np.maximum(L,U); mn=np.minimum(L,U)
    p = np.where(UL>=mx, mn, np.where(UL<=mn, mx, L+U-UL))
    return p
z = zstandard.ZstdCompressor(level=19)
res = {}
for f in sorted(glob.glob(str(__import__('pathlib').Path(__file__).resolve().parents[3] / 'shared/corpus/kodak/*.png'))):
    px = pixels.load(f)
    for k in (16, 64, 256):
        q = quantize.quantize(px.array, k=k); idx = rdo.smooth(px.array, q.codebook, q.indices, strength=0.6)
        n = len(q.codebook)
        base = len(codec._choose_coding(idx, packing.bits_for(n) if hasattr(packing,'bits_for') else int(np.ceil(np.log2(n))), 19, 0, try_zstd=True)[2])
        out = {'base': base}
        for oname, order in (('tour', tour(q.codebook)), ('lum', lum_order(q.codebook))):
            inv = np.empty(n, int); inv[order] = np.arange(n)
            r = inv[idx]
            for pname, pred in (('up', np.vstack([np.zeros((1, r.shape[1]),int), r[:-1]])), ('med', med(r))):
                resid = ((r - pred) % n).astype(np.uint8 if n<=256 else np.uint16)
                # fold to small magnitudes: 0,1,-1,2,-2...
                d = ((r - pred + n//2) % n) - n//2
                fold = np.where(d>=0, 2*d, -2*d-1).astype(np.uint8 if n<=256 else np.uint16)
                for tname, t in (('mod', resid), ('fold', fold)):
                    raw = t.tobytes()
                    out[f'{oname}-{pname}-{tname}-zstd'] = len(z.compress(raw))
                    out[f'{oname}-{pname}-{tname}-bz2'] = len(bz2.compress(raw, 9))
        for kk, v in out.items(): res.setdefault((k, kk), []).append(v / base)
    print(f, flush=True)
for (k, kk), v in sorted(res.items()):
    print(k, kk, round(float(np.mean(v)), 3))
