"""integration layer of iop-bridge."""
