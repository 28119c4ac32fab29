"""`lightning-dlc diagnostics` as a script from the checkout (the app is lightning_dlc/cli/diagnostics.py)."""
from lightning_dlc.cli.diagnostics import main

if __name__ == "__main__":
    main()
