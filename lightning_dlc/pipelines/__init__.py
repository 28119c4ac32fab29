"""Work that chains several rooms (video analysis -> tracking -> re-identification), called by api.py and scripts."""
