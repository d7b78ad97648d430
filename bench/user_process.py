"""How the benches run vqcodec as a separate process: the venv's console script, in the
environment a user's shell gives it.

One difference from this workplace's shells matters: they set
``PYTHONDONTWRITEBYTECODE=1``, so Python compiles every vqcodec module from source
in every process (about 90 ms of a 0.3 s encode), while a user's install runs from
compiled bytecode (pip compiles it for a normal install; an editable install writes
``__pycache__`` on first use).  :func:`env` drops that variable, and :func:`warm`
runs a command once first so the bytecode exists before anything is timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VQCODEC = str(Path(sys.executable).with_name("vqcodec"))  # the venv's console script


def env() -> dict[str, str]:
    """The environment for a timed process: this one without PYTHONDONTWRITEBYTECODE."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run(args: list[str]) -> None:
    """Run *args* to completion in :func:`env`; a failure raises."""
    subprocess.run(args, check=True, capture_output=True, env=env())


def warm() -> None:
    """Import everything an encode and a decode use once, writing their bytecode."""
    run([sys.executable, "-c", "import vqcodec.cli, vqcodec.coders.ctx, vqcodec.coders.cand, "
         "vqcodec.coders.zstd, vqcodec.coders.bzip2"])
