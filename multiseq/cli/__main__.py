"""`python -m multiseq.cli ...` (and `torchrun -m multiseq.cli ...`): the same as the `multiseq` command."""

import sys

from multiseq.cli import main

sys.exit(main())
