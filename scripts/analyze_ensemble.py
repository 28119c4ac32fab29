"""`lightning-dlc analyze-ensemble` as a script from the checkout (the app is lightning_dlc/cli/analyze_ensemble.py)."""
from lightning_dlc.cli.analyze_ensemble import main

if __name__ == "__main__":
    main()
