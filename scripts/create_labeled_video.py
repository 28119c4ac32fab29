"""`lightning-dlc create-labeled-video` as a script from the checkout (the app is lightning_dlc/cli/create_labeled_video.py)."""
from lightning_dlc.cli.create_labeled_video import main

if __name__ == "__main__":
    main()
