"""Recipes that make instruction-tuning data: Self-Instruct and Explore-Instruct, resumable runs.

Stage logic talks to LLMs and to the dedup service only through the small interfaces in `protocols`,
so the same code runs over the gRPC services and over in-process fakes.
"""
