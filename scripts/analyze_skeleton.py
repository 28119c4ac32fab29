"""`lightning-dlc analyze-skeleton` as a script from the checkout (the app is lightning_dlc/cli/analyze_skeleton.py)."""
from lightning_dlc.cli.analyze_skeleton import main

if __name__ == "__main__":
    main()
