"""``python -m vqcodec`` runs the command-line interface."""

import sys

from vqcodec.cli import main

sys.exit(main())
