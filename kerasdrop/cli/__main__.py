"""`python -m kerasdrop.cli ...`, the same as the `kerasdrop` console script."""

import sys

from kerasdrop.cli import main

sys.exit(main())
