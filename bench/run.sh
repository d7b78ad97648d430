#!/usr/bin/env bash
# bench/run.sh — whole-process encode speed and memory of vqcodec against pngquant 2.17.
#
#   bench/run.sh                 # Kodak 01-08 at k=256, the 24 MP image, decode speed
#   bench/run.sh --big           # + the 100 MP image (peak memory only; takes minutes)
#   bench/run.sh --runs 20       # hyperfine runs per Kodak case (default 10; 24 MP: 3)
#   bench/run.sh --only-kodak    # skip the 24 MP cases
#
# Run from the repository root.  Needs hyperfine, pngquant, /usr/bin/time and
# .venv (pip install -e .).  What it measures (issue 3):
#
#   (a) `vqcodec encode kodimNN.png out.vqi -k 256` against `pngquant --nofs 256`,
#       whole process, hyperfine --warmup 1, median wall time; target ratio <= 2.0.
#       The report line (MSE, PSNR, SSIM) is part of the measured command.
#   (b) the same on kodim03 upscaled to 6000x4000 (Pillow LANCZOS, saved as PNG,
#       made once in the cache folder); target ratio <= 1.0.
#   (c) peak resident memory of both on that image (/usr/bin/time -v,
#       "Maximum resident set size"); target: vqcodec below 1 GB.
#   (d) in-process decode: vqcodec.decode(.vqi bytes) -> numpy against Pillow
#       decoding pngquant's PNG -> numpy (bench/decode_bench.py, median of 7);
#       "pillow" is the palette indices as Pillow returns them, "pillow_rgb"
#       adds .convert("RGB") to get pixels, like vqcodec's output.
#   --big: kodim03 upscaled to 12250x8163 (100 MP): peak RSS of `vqcodec encode`
#       and of decoding it to a numpy array (vqcodec.decode in a fresh process).
#
# Python runs with bytecode caching on (PYTHONPYCACHEPREFIX in the cache
# folder, PYTHONDONTWRITEBYTECODE unset), as for an installed package: pip
# compiles modules at install time, and compiling vqcodec on every start
# costs ~30 ms.  The warm-up run fills the cache.
#
# Cache folder: $VQBENCH_CACHE or ${TMPDIR:-/tmp}/vqcodec-bench (images, pycache).
# Outputs: hyperfine JSON files and the time -v logs are left in the cache folder.

set -euo pipefail

RUNS=10
BIG_RUNS=3
BIG=0
ONLY_KODAK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --big) BIG=1 ;;
        --runs) RUNS="$2"; shift ;;
        --big-runs) BIG_RUNS="$2"; shift ;;
        --only-kodak) ONLY_KODAK=1 ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
VQ="$ROOT/.venv/bin/vqcodec"
KODAK="$ROOT/../shared/corpus/kodak"
CACHE="${VQBENCH_CACHE:-${TMPDIR:-/tmp}/vqcodec-bench}"
OUT="$CACHE/out"
mkdir -p "$CACHE" "$OUT"
for tool in hyperfine pngquant /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool not found" >&2; exit 2; }
done
[[ -x "$VQ" ]] || { echo "bench/run.sh: $VQ not found; pip install -e . in .venv" >&2; exit 2; }
[[ -d "$KODAK" ]] || { echo "bench/run.sh: corpus $KODAK not found" >&2; exit 2; }

export PYTHONPYCACHEPREFIX="$CACHE/pycache"
unset PYTHONDONTWRITEBYTECODE

upscale() {  # upscale SRC W H DST [compress_level]
    [[ -s "$4" ]] && return
    echo "making $4 (${2}x${3}) ..." >&2
    "$PY" - "$1" "$2" "$3" "$4" "${5:-6}" <<'EOF'
import os, sys
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
src, w, h, dst, level = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
im = Image.open(src).convert("RGB").resize((w, h), Image.LANCZOS)
im.save(dst + ".tmp.png", compress_level=level)
os.replace(dst + ".tmp.png", dst)
EOF
}

peak_rss_mb() {  # peak_rss_mb LOG -- COMMAND...: run under time -v, print the peak RSS in MB
    local log="$1"; shift 2
    /usr/bin/time -v "$@" >/dev/null 2>"$log" || { echo "failed: $* (see $log)" >&2; tail -3 "$log" >&2; return 1; }
    awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log"
}

hf() {  # hf NAME RUNS CMD_VQ CMD_PQ: hyperfine both commands, JSON to $CACHE/NAME.json
    hyperfine -N --warmup 1 --runs "$2" --style none --export-json "$CACHE/$1.json" "$3" "$4" >/dev/null 2>"$CACHE/$1.err"
}

echo "vqcodec bench: $(nproc) cpus, $(pngquant --version | head -1 | cut -d' ' -f1) pngquant, runs=$RUNS, cache $CACHE"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other processes skew the times)"

# ---- (a) Kodak, k = 256
names=()
for i in 1 2 3 4 5 6 7 8; do
    n="kodim0$i"
    names+=("$n")
    hf "$n" "$RUNS" \
        "$VQ encode $KODAK/$n.png $OUT/$n.vqi -k 256 -f" \
        "pngquant --nofs 256 --force -o $OUT/$n-pq.png $KODAK/$n.png"
done

# ---- (b), (c) 24 MP
rows=("${names[@]}")
rss24=""
if [[ $ONLY_KODAK == 0 ]]; then
    BIG24="$CACHE/kodim03-6000x4000.png"
    upscale "$KODAK/kodim03.png" 6000 4000 "$BIG24"
    hf big24 "$BIG_RUNS" \
        "$VQ encode $BIG24 $OUT/big24.vqi -k 256 -f" \
        "pngquant --nofs 256 --force -o $OUT/big24-pq.png $BIG24"
    rows+=("big24")
    vq_rss=$(peak_rss_mb "$CACHE/rss-vq-24.log" -- "$VQ" encode "$BIG24" "$OUT/big24.vqi" -k 256 -f)
    pq_rss=$(peak_rss_mb "$CACHE/rss-pq-24.log" -- pngquant --nofs 256 --force -o "$OUT/big24-pq.png" "$BIG24")
    rss24="$vq_rss $pq_rss"
fi

"$PY" - "$CACHE" "$rss24" "${rows[@]}" <<'EOF'
import json, statistics, sys
cache, rss, names = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print()
print("whole-process wall time, s: median (ratio vqcodec / pngquant); [min], the best")
print("estimate of each on a busy machine")
print(f"{'encode k=256':14} {'vqcodec':>8} {'pngquant':>9} {'ratio':>6} {'target':>7}   "
      f"{'[vq min':>8} {'pq min':>7} {'ratio]':>7}")
ratios, min_ratios = [], []
for name in names:
    with open(f"{cache}/{name}.json") as f:
        (vq, vq_min), (pq, pq_min) = ((statistics.median(r["times"]), min(r["times"]))
                                      for r in json.load(f)["results"])
    target = 1.0 if name == "big24" else 2.0
    if name != "big24":
        ratios.append(vq / pq)
        min_ratios.append(vq_min / pq_min)
    print(f"{'24 MP' if name == 'big24' else name:14} {vq:8.3f} {pq:9.3f} {vq / pq:6.2f} "
          f"{'<= %.1f' % target:>7}   {vq_min:8.3f} {pq_min:7.3f} {vq_min / pq_min:7.2f}"
          f"{'' if vq / pq <= target else '  MISSED'}")
if ratios:
    print(f"{'Kodak median':14} {'':8} {'':9} {statistics.median(ratios):6.2f} {'<= 2.0':>7}   "
          f"{'':8} {'':7} {statistics.median(min_ratios):7.2f}")
if rss:
    vq, pq = map(int, rss)
    print(f"{'24 MP peak RSS':14} {vq:5d} MB {pq:6d} MB {vq / pq:6.2f} {'< 1 GB':>7}"
          f"{'' if vq < 1000 else '  MISSED'}")
EOF

# ---- (d) decode, in-process
echo
echo "decode to numpy, in-process, median of 7 (s; ratio = vqcodec / Pillow)"
dec_rows=("kodim01:$OUT/kodim01.vqi:$OUT/kodim01-pq.png:$KODAK/kodim01.png")
[[ $ONLY_KODAK == 0 ]] && dec_rows+=("24 MP:$OUT/big24.vqi:$OUT/big24-pq.png:$BIG24")
for row in "${dec_rows[@]}"; do
    IFS=: read -r label vqi png src <<<"$row"
    "$PY" "$ROOT/bench/decode_bench.py" "$vqi" "$png" --source "$src" --json | "$PY" -c '
import json, sys
r = json.load(sys.stdin); v, p, q = (r[n]["median_s"] for n in ("vqcodec", "pillow", "pillow_rgb"))
print(f"{sys.argv[1]:14} vqcodec {v:.4f}  pillow {p:.4f} ({v / p:.2f}x)  pillow_rgb {q:.4f} ({v / q:.2f}x)")
' "$label"
done

# ---- 100 MP: memory only
if [[ $BIG == 1 ]]; then
    BIG100="$CACHE/kodim03-12250x8163.png"
    upscale "$KODAK/kodim03.png" 12250 8163 "$BIG100" 1
    echo
    t0=$(date +%s.%N)
    enc=$(peak_rss_mb "$CACHE/rss-vq-100.log" -- "$VQ" encode "$BIG100" "$OUT/big100.vqi" -k 256 -f)
    t1=$(date +%s.%N)
    dec=$(peak_rss_mb "$CACHE/rss-vq-100-dec.log" -- "$PY" -c \
        'import sys, vqcodec; a = vqcodec.decode(sys.argv[1], max_pixels=None); print(a.shape)' "$OUT/big100.vqi")
    pq=$(peak_rss_mb "$CACHE/rss-pq-100.log" -- pngquant --nofs 256 --force -o "$OUT/big100-pq.png" "$BIG100")
    printf '%-14s encode %6d MB (%.1f s)  decode to numpy %6d MB  (pngquant %d MB)\n' \
        "100 MP peak" "$enc" "$(echo "$t1 - $t0" | bc)" "$dec" "$pq"
fi
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
