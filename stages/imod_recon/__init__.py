"""Stage imod-recon: binning by Fourier cropping and weighted back projection.

Array API (no files): :func:`reconstruct_array` (bin + reconstruct), :func:`bin_stack`,
:func:`weighted_back_projection`, :func:`radial_weights`. File API: :func:`reconstruct`.
"""

from .binning import bin_stack, bin_volume, plan_binning
from .radial import radial_weights
from .reconstruct import bin_tomogram, reconstruct, reconstruct_array
from .wbp import weighted_back_projection

__all__ = ["bin_stack", "bin_tomogram", "bin_volume", "plan_binning", "radial_weights", "reconstruct", "reconstruct_array",
           "weighted_back_projection"]
