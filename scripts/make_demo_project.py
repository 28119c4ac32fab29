"""`lightning-dlc make-demo` as a script from the checkout (the app is lightning_dlc/cli/make_demo.py)."""
from lightning_dlc.cli.make_demo import main

if __name__ == "__main__":
    main()
