"""Helpers that read the template's questions, bake and render projects, install their locks and
run their services: imported by tests/, tools/ and benchmarks/ alike."""
