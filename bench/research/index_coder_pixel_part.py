"""Index coder 3 research: what the candidate symbol's context loses when the pixel-to-pixel
part is cheap (no table look-ups on W) or fixed.

    nice .venv/bin/python bench/research/index_coder_pixel_part.py kodim05-k16 kodim05-k256

For cached maps (index_coder_prep.py), the candidate stream's static bytes
(tables counted), its pure entropy and adaptive bytes under: the free tree
over all 28 properties (model K), <= 12 packed tests over all, a fixed 7-bit
pixel part (W=N, W=NW, W=NE, W=WW, left symbol) with 6 / 2 / 0 per-image
tests on row-only properties, and a free tree over the row-only properties
plus the cheap compares on W (no distance, luma or value look-ups on W).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np, index_coder_probe as P, index_coder_prep as prep
for name in sys.argv[1:]:
    z=np.load(prep.CACHE/f'{name}.npz'); m=P.Map(z['indices'],z['codebook'])
    new_of=P.palette_order(m,'chain')
    sym, esc, r_all, r_excl, ndist, slot_of = P.cand_streams(m)
    props=np.concatenate([P.mode_props(m, sym, 6, slot_of, ndist, which='all'), P.value_props(m,new_of,levels=16)])
    nb=m.nb
    wpart=((nb['W']==nb['N']).astype(np.int64)|(nb['W']==nb['NW'])<<1|(nb['W']==nb['NE'])<<2|(nb['W']==nb['WW'])<<3|props[10]<<4)
    rows=props[list(P.ROW_ONLY)]
    for label,pr,init,mt in (('K tree (all)',None,None,0),('flat all 12',props,None,12),('fast 7bit+6row',rows,wpart,6),('fast 7bit+2row',rows,wpart,2),('fast 7bit+0',rows,wpart,0)):
        if pr is None:
            leaf,L=P.learn_tree(props,sym,7); c=P.counts_of(leaf,sym,L,7)
        else:
            ctxw,tests=P.learn_flat(pr,sym,7,max_tests=mt,init=init); L=int(ctxw.max())+1; c=P.counts_of(ctxw,sym,L,7)
        st=P.static_bits(c)/8; ent=P.adaptive_bits(c)/8
        nz=c.sum(1); H=float((c[c>0]*np.log2((nz[:,None].repeat(7,1))[c>0]/c[c>0])).sum()/8)
        print(name,label,'ctx',L,'static',round(st),'pure entropy',round(H),'table',round(st-H),'adaptive',round(ent),flush=True)
    # cheap-pixel-part tree: row props + cheap W compares
    cheap=[0,2,4,6,8,10,12]+list(P.ROW_ONLY)
    leaf,L=P.learn_tree(props[cheap],sym,7); c=P.counts_of(leaf,sym,L,7)
    print(name,'tree: row props + cheap W compares',round(P.static_bits(c)/8), L)
