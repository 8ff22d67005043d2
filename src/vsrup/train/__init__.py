"""Training for vsrup's own tiny model: degradations, data from videos/frames, losses, the loop.

Run it with `python -m vsrup.train --help`; `train(TrainSettings(...))` is the same as a function.
"""

from vsrup.train.loop import TrainSettings, train

__all__ = ["TrainSettings", "train"]
