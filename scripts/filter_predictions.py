"""`lightning-dlc filter-predictions` as a script from the checkout (the app is lightning_dlc/cli/filter_predictions.py)."""
from lightning_dlc.cli.filter_predictions import main

if __name__ == "__main__":
    main()
