"""Hand-made checkpoint files for the tests that feed load_checkpoint what save never writes."""

import sys


def crafted_manifest(leaves, nbytes, **fields):
    """A gradtx checkpoint manifest for ``leaves``; ``fields`` override or add entries."""
    return {
        "format": "gradtx.checkpoint",
        "version": 1,
        "byteorder": sys.byteorder,
        "nbytes": nbytes,
        "leaves": leaves,
        **fields,
    }
