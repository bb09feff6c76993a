"""distill: turn a large reasoning model into a small one (generate, filter, finetune, eval, publish).

Usage:
    distill run                       # the whole offline default pipeline
    from distill.verify import check  # the library: each stage is distill.<stage>.run(config)
"""

__version__ = "0.1.0"
