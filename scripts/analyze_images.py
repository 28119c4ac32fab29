"""`lightning-dlc analyze-images` as a script from the checkout (the app is lightning_dlc/cli/analyze_images.py)."""
from lightning_dlc.cli.analyze_images import main

if __name__ == "__main__":
    main()
