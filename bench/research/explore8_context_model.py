"""What a context-modelling index coder could save over the default coder (an estimate).

    .venv/bin/python bench/research/explore8_context_model.py

Runs pngquant --nofs (on PATH) into a temporary folder for the sizes.  Model, static two-pass (table
costs counted at 10 bits per non-zero count): each pixel first codes a
*mode* -- equal to its left, up, up-right or up-left neighbour, or a
literal -- given which of those neighbours are equal to each other and the
previous pixel's mode; a literal codes its index given the left
neighbour's index.  Ideal code lengths (entropy), no coder overhead.

Result on Kodak kodim01-08 at default settings (2026-11-25; size / the
default encoder's .vqi size, which is 0.787 / 0.787 / 0.769 of pngquant's):

    k      modes  literals|L  total   literal share of pixels
    16     0.62   (0.16)      0.78    10 %
    64     0.52   (0.31)      0.83    23 %
    256    0.39   (0.49)      0.88    39 %

i.e. 12-22 % below bzip2, about 0.61-0.68 of pngquant's bytes.  Such a
coder only pays if its decoder is compiled: in numpy the neighbour
dependency forces a loop over rows or diagonals (hundreds of steps), slower
than bzip2.  A table-driven rANS decoder in C would decode at zstd speed,
which is what issue 3's decode target needs; not built (pure-Python package).
"""
import sys, glob, os, bz2, statistics as st
import numpy as np
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[2]))
import subprocess, tempfile
PQ = tempfile.mkdtemp(prefix='explore8-')
from vqcodec import codec
imgs = sorted(glob.glob(str(__import__('pathlib').Path(__file__).resolve().parents[3] / 'shared/corpus/kodak/*.png')))
def H(counts):
    c = counts[counts>0].astype(float); n=c.sum(); return -(c*np.log2(c/n)).sum()
def cond_bits(ctx, sym, nsym):
    # static conditional entropy sum + table cost approx (nonzero entries * 12 bits)
    key = ctx.astype(np.int64)*nsym + sym
    u, cnt = np.unique(key, return_counts=True)
    cu, ccnt = np.unique(u//nsym, return_counts=False), None
    tot = 0.0
    ctxs = u//nsym
    # per context
    order = np.argsort(ctxs, kind='stable')
    ctxs=ctxs[order]; cnt=cnt[order]
    bounds = np.flatnonzero(np.diff(ctxs))+1
    for part in np.split(cnt, bounds):
        tot += H(part)
    return tot + len(u)*10
for k in (16,64,256):
    res=[]
    for p in imgs:
        e = codec.encode_pixels(p, k=k); idx=e.indices.astype(np.int64); h,w=idx.shape
        pq = f'{PQ}/{os.path.basename(p)}-{k}.png'
        subprocess.run(['pngquant', '--nofs', str(k), '--force', '-o', pq, p], check=True)
        pqs = os.path.getsize(pq)
        P=np.full((h+1,w+2),-1,np.int64); P[1:,1:-1]=idx
        L=P[1:,:-2]; U=P[:-1,1:-1]; UL=P[:-1,:-2]; UR=P[:-1,2:]; X=idx
        mode=np.full(X.shape,4)
        for m,N in ((3,UL),(2,UR),(1,U),(0,L)):
            mode[X==N]=m
        # distinctness pattern ctx
        ctx=((L==U)*1+(U==UR)*2+(L==UL)*4+(UL==U)*8)
        ctx2 = ctx*5 + np.pad(mode,((0,0),(1,0)),constant_values=4)[:,:-1]  # + previous mode
        lit = X[mode==4]
        b_mode = cond_bits(ctx2.ravel(), mode.ravel(), 5)
        b_lit0 = H(np.bincount(lit, minlength=k)) + k*10
        # literal given L (excluding): cond entropy with context L
        b_litL = cond_bits(L[mode==4]+1, lit, k)
        b_litU = cond_bits(U[mode==4]+1, lit, k)
        cur = len(e.data)*8
        res.append(dict(mode=b_mode/cur, lit0=b_lit0/cur, tot0=(b_mode+b_lit0)/cur, totL=(b_mode+min(b_litL,b_lit0))/cur, litfrac=(mode==4).mean(), vqi_pq=len(e.data)/pqs))
    print(k, {key: round(st.mean(r[key] for r in res),3) for key in res[0]})
