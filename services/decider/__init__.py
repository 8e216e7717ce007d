"""The decider: hardware, sensors, entropy and profit in; scaling decisions out."""
