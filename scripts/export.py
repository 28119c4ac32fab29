"""`lightning-dlc export` as a script from the checkout (the app is lightning_dlc/cli/export.py)."""
from lightning_dlc.cli.export import main

if __name__ == "__main__":
    main()
