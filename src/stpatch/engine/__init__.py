"""Training, evaluation and prediction (Lightning): see ``stpatch.engine.runner`` and ``stpatch.engine.config``."""
