"""Approvals of manual-intervention steps, and the offline checks of the proofs they carry."""
