"""Drift monitoring: features of generations, serving logs, Evidently reports."""
