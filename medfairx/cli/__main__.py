"""``python -m medfairx.cli``."""

from medfairx.cli import main

main()
