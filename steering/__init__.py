"""steering: the brain of autonomous scanning microscopy.

Pure numpy/torch; knows pixels, not motors. See `Sampler` for the ask/tell loop.
"""

from .erd import ERDNet, ModelFileError, load_model, save_model
from .sampler import Sampler
from .stopping import StopCriteria

__all__ = ["Sampler", "StopCriteria", "ERDNet", "load_model", "save_model", "ModelFileError", "__version__"]
__version__ = "0.1.0"
