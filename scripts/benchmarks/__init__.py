"""The pieces of `scripts/benchmark.py` (its entry point): the corpus, the memory sampler and measured
subprocesses, the encode-only ceilings, prepare's rows and goals, the training adapters, and the evaluation
of GPT-2 encoders. Benchmarks print figures; they never pass or fail."""
