"""``python -m hdrepro.report``: the same as ``hdrepro report``."""
from . import main

main()
