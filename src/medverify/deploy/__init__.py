"""Deployment: quantization, trained drafts for speculative decoding, OpenAI-compatible serving."""
