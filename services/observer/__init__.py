"""The observer ("quantum observer"): inventory, fingerprint, sensors, change detection."""
