"""``python -m gradtx``: runs the example app's command line (:mod:`gradtx.examples.cli`)."""

import sys

from gradtx.examples.cli import main

if __name__ == "__main__":
    sys.exit(main())
