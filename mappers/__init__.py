"""mappers layer of iop-bridge."""
