"""`lightning-dlc train` as a script from the checkout (the app is lightning_dlc/cli/train.py)."""
from lightning_dlc.cli.train import main

if __name__ == "__main__":
    main()
