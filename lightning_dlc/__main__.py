"""``python -m lightning_dlc <command> ...``: the same as the ``lightning-dlc`` console command."""
from lightning_dlc.cli import main

main()
