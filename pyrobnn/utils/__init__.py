"""Small helpers shared by every layer of the package (no pyrobnn imports)."""
