"""`lightning-dlc evaluate` as a script from the checkout (the app is lightning_dlc/cli/evaluate.py)."""
from lightning_dlc.cli.evaluate import main

if __name__ == "__main__":
    main()
