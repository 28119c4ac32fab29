"""`lightning-dlc analyze-videos` as a script from the checkout (the app is lightning_dlc/cli/analyze_videos.py)."""
from lightning_dlc.cli.analyze_videos import main

if __name__ == "__main__":
    main()
