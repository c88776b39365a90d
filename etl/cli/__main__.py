"""``python -m etl.cli``: the CLI without the console script (the demo spawns it this way)."""

from etl.cli import main

main(prog_name="vtex-synerise")
