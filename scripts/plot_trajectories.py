"""`lightning-dlc plot-trajectories` as a script from the checkout (the app is lightning_dlc/cli/plot_trajectories.py)."""
from lightning_dlc.cli.plot_trajectories import main

if __name__ == "__main__":
    main()
