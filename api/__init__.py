"""api layer of iop-bridge."""
