"""Evaluation tools (application layer): the attribute classifier protocol, counterfactual errors, FID/KID."""
