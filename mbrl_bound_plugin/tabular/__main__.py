"""``python -m mbrl_bound_plugin.tabular EXPERIMENT [--json] [--plot FILE.png]``."""

import sys

from mbrl_bound_plugin.tabular.cli import main

if __name__ == "__main__":
    sys.exit(main())
