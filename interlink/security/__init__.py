"""Proofs and secrets: provider signatures, signed media links, secrets encrypted at rest."""
