"""Bias audits of generated samples; each returns pass/fail with the reason."""
