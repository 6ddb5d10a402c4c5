"""Custom Panel components of the dashboard (ESM modules shipped beside their Python class)."""
