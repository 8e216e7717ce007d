"""Sample data shipped with QAS (see README.md here for its source and licence)."""

from pathlib import Path

SAMPLE = Path(__file__).with_name("sp500_2007_2009.csv")
