"""python -m verifier: the gradverify command."""

import sys

from .cli import main

sys.exit(main())
