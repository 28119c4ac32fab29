"""`lightning-dlc create-training-dataset` as a script from the checkout (the app is lightning_dlc/cli/create_training_dataset.py)."""
from lightning_dlc.cli.create_training_dataset import main

if __name__ == "__main__":
    main()
