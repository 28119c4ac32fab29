"""`lightning-dlc track` as a script from the checkout (the app is lightning_dlc/cli/track.py)."""
from lightning_dlc.cli.track import main

if __name__ == "__main__":
    main()
