"""``python -m squeezeprompt``: the same as the ``squeezeprompt`` command."""

import sys

from squeezeprompt.cli import main

sys.exit(main())
