"""Index coder 3 research: decode speed of the recommended model, a C prototype against coder 2.

    nice .venv/bin/python bench/research/index_coder_speed.py [--images kodim01,kodim05] [--k 16,256] [--fast]

Builds index_coder_speed.c (cc -O2) and, for each cached map
(index_coder_prep.py): sorts the palette in "chain" order, computes the
candidate symbols and escapes (index_coder_probe.cand_streams), learns the
packed-test contexts (learn_flat, <= 12 tests each for the candidate and the
escape stream; the escape codes the index itself), quantises the tables as
coder 2 does and encodes with rANS in Python; then times, single-threaded,
median of 21 alternating runs (process CPU time: the box is shared): the prototype decoder (one band, one rANS
state, all 28 properties computed per pixel) against coder 2's C decoder on
the same map (decode_image, one thread, its own bands).  Checks the decode.
Prints the index data sizes too (the prototype's real rANS stream, without
its tables; coder 2's whole INDX data).  ``--fast`` also runs the "K fast"
context (a fixed 7-bit pixel part above <= 6 row-only tests).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import index_coder_prep as prep  # noqa: E402
import index_coder_probe as probe  # noqa: E402

from vqcodec.coders import ctx, rans  # noqa: E402

SCALE = 4096
RANS_L = 1 << 23


def build() -> ctypes.CDLL:
    src = HERE / "index_coder_speed.c"
    lib = HERE / "cache" / "index_coder_speed.so"
    lib.parent.mkdir(exist_ok=True)
    if not lib.exists() or lib.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-march=native", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib))


def tables(ctx_ids: np.ndarray, sym: np.ndarray, n_ctx: int, a: int):
    counts = probe.counts_of(ctx_ids, sym, n_ctx, a)
    freq = np.zeros((n_ctx, a), dtype=np.int64)
    for c in range(n_ctx):
        if counts[c].any():
            freq[c] = ctx.quantize_frequencies(counts[c])
        else:
            freq[c, 0] = SCALE
    cum = np.zeros((n_ctx, a + 1), dtype=np.int64)
    cum[:, 1:] = np.cumsum(freq, axis=1)
    # bucket b (slots 64b ... 64b+63): the symbol holding slot 64b
    bkt = np.zeros((n_ctx, 64), dtype=np.uint8)
    for c in range(n_ctx):
        bkt[c] = np.searchsorted(cum[c, 1:], np.arange(64) * 64, side="right")
    start = cum[:, :-1]
    return freq.astype(np.uint16), start.astype(np.uint16), cum.astype(np.uint16), bkt


def lut_for(props: np.ndarray, tests: list, sel=None, init=None, init_bits: int = 0):
    """(word per sample, lut word -> dense context, number of contexts)."""
    word = np.zeros(props.shape[1], dtype=np.int64) if init is None else init.astype(np.int64)
    for p, t in tests:
        word = word * 2 + (props[p] > t)
    used = np.unique(word if sel is None else word[sel])
    lut = np.zeros(1 << (len(tests) + init_bits), dtype=np.uint16)
    lut[used] = np.arange(len(used))
    return word, lut, len(used)


def rans_encode(freqs: np.ndarray, starts: np.ndarray) -> bytes:
    out = bytearray()
    x = RANS_L
    for f, s in zip(freqs[::-1].tolist(), starts[::-1].tolist()):
        x_max = ((RANS_L >> 12) << 8) * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // f << 12) + x % f + s
    out.reverse()
    return x.to_bytes(4, "little") + bytes(out)


def arr(a, ctype):
    a = np.ascontiguousarray(a)
    return a, a.ctypes.data_as(ctypes.POINTER(ctype))


def run(stem: str, k: int, lib: ctypes.CDLL, fast: bool = False) -> None:
    z = np.load(prep.CACHE / f"{stem}-k{k}.npz")
    m0 = probe.Map(z["indices"], z["codebook"])
    new_of = probe.palette_order(m0, "chain")
    book = np.ascontiguousarray(z["codebook"][np.argsort(new_of)])
    grid = np.ascontiguousarray(new_of[z["indices"]].astype(np.uint8))
    m = probe.Map(grid, book)
    h, w = grid.shape
    ident = np.arange(m.k)
    sym, esc, *_, ndist, slot_of = probe.cand_streams(m)
    props = np.concatenate([probe.mode_props(m, sym, len(probe.CAND), slot_of, ndist, which="all"),
                            probe.value_props(m, ident, levels=16)])
    assert len(props) == 28
    if fast:  # fixed 7-bit pixel part above <= 6 row-only tests (probe.fast_bits)
        nb = m.nb
        wpart = ((nb["W"] == nb["N"]).astype(np.int64) | (nb["W"] == nb["NW"]) << 1
                 | (nb["W"] == nb["NE"]) << 2 | (nb["W"] == nb["WW"]) << 3 | props[10] << 4)
        _, tests1 = probe.learn_flat(props[list(probe.ROW_ONLY)], sym, 7, max_tests=6, init=wpart)
        tests1 = [(probe.ROW_ONLY[p], t) for p, t in tests1]
        word1, lut1, n1 = lut_for(props, tests1, init=wpart, init_bits=7)
    else:
        _, tests1 = probe.learn_flat(props, sym, 7)
        word1, lut1, n1 = lut_for(props, tests1)
    cx1 = lut1[word1].astype(np.int64)
    f1, s1, cu1, b1 = tables(cx1, sym, n1, 7)
    xe = m.X[esc]
    _, tests2 = probe.learn_flat(props[:, esc], xe, m.k)
    word2, lut2, n2 = lut_for(props, tests2, esc)
    cx2 = lut2[word2].astype(np.int64)
    f2, s2, cu2, b2 = tables(cx2[esc], xe, n2, m.k)
    # symbols in decoding order: per pixel the candidate symbol, then the escape's index
    n = len(sym)
    order = np.argsort(np.concatenate([np.arange(n) * 2, np.flatnonzero(esc) * 2 + 1]), kind="stable")
    fr = np.concatenate([f1[cx1, sym], f2[cx2[esc], xe]])[order].astype(np.int64)
    st = np.concatenate([s1[cx1, sym], s2[cx2[esc], xe]])[order].astype(np.int64)
    stream = rans_encode(fr, st)
    # coder 2 on the same (chain-ordered) map: its own data and tables
    data2 = ctx.encode(grid, book)
    mode_freq, literal_freq, offset = ctx.read_tables(data2, m.k)
    band_rows, streams2 = rans.read_streams(data2, offset, h, ctx.WHO)
    tables2 = (mode_freq.tobytes(), rans.starts(mode_freq).tobytes(),
               literal_freq.tobytes(), rans.starts(literal_freq).tobytes())
    out2 = np.empty(h * w, dtype=np.uint8)

    def coder2():
        ctx._native.decode_image(streams2, out2, w, band_rows, book.tobytes(), book.shape[1], False,
                                 *tables2, 1)

    keep = []
    dist, p_dist = arr(m.dist.astype(np.uint32), ctypes.c_uint32)
    lum, p_lum = arr((m.lum // 16).astype(np.uint8), ctypes.c_uint8)
    val, p_val = arr((ident * min(16, m.k) // m.k).astype(np.uint8), ctypes.c_uint8)
    args = [int(fast), stream, len(stream), w, h, m.k, p_dist, p_lum, p_val]
    for tests, lut, cu, bk in ((tests1, lut1, cu1, b1), (tests2, lut2, cu2, b2)):
        tp, p_tp = arr(np.array([t[0] for t in tests] or [0], dtype=np.int32), ctypes.c_int32)
        tt, p_tt = arr(np.array([t[1] for t in tests] or [0], dtype=np.int32), ctypes.c_int32)
        lu, p_lu = arr(lut, ctypes.c_uint16)
        ca, p_c = arr(cu, ctypes.c_uint16)
        ba, p_b = arr(bk, ctypes.c_uint8)
        keep += [tp, tt, lu, ca, ba]
        args += [len(tests), p_tp, p_tt, p_lu, p_c, p_b]
    out, p_out = arr(np.zeros(h * w, dtype=np.uint8), ctypes.c_uint8)
    scratch, p_scr = arr(np.zeros(2 * w, dtype=np.uint8), ctypes.c_uint8)
    args += [p_out, p_scr]
    lib.cand_decode.restype = ctypes.c_int
    lib.cand_decode.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                *[ctypes.c_void_p] * 3, *([ctypes.c_int] + [ctypes.c_void_p] * 5) * 2,
                                ctypes.c_void_p, ctypes.c_void_p]
    rc = lib.cand_decode(*args)
    ok = rc == 0 and np.array_equal(out, grid.ravel())
    coder2()
    ok2 = np.array_equal(out2, grid.ravel())
    t_new, t_old = [], []
    for _ in range(21):
        t0 = time.process_time()
        lib.cand_decode(*args)
        t_new.append(time.process_time() - t0)
        t0 = time.process_time()
        coder2()
        t_old.append(time.process_time() - t0)
    a, b = statistics.median(t_new) * 1e3, statistics.median(t_old) * 1e3
    print(f"{stem} k={k}{' fast' if fast else ''}: cand stream {len(stream):>7} B ({len(tests1)}+{len(tests2)} tests, {n1}+{n2} contexts, "
          f"{1 + esc.mean():.2f} symbols/pixel), coder 2 {len(data2):>7} B; decode 1 thread: "
          f"cand {a:.2f} ms, coder 2 {b:.2f} ms, ratio {a / b:.2f} (decoded right: {ok}, {ok2})", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim01,kodim05")
    ap.add_argument("--k", default="16,256")
    ap.add_argument("--fast", action="store_true", help="also the 'K fast' context (fixed pixel part + row tests)")
    args = ap.parse_args(argv)
    lib = build()
    for stem in args.images.split(","):
        for k in (int(x) for x in args.k.split(",")):
            run(stem, k, lib)
            if args.fast:
                run(stem, k, lib, fast=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
