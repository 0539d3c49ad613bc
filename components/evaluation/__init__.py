"""Evaluation metrics: FID for images, perplexity and bits per character for text."""
