"""templearn: Template Learning for particle picking in cryo-electron tomograms.

The package root holds the one place for every contract between stages:

- :mod:`templearn.errors`     one error type, turned into a one-line message at the CLI edge
- :mod:`templearn.atomic`     atomic writes (temp file, then rename)
- :mod:`templearn.mrc`        MRC read/write with the voxel size in the header, arrays [z, y, x]
- :mod:`templearn.euler`      ZYZ Euler angles, RELION (rot, tilt, psi), degrees
- :mod:`templearn.manifest`   the sample manifest (what tetris placed, read by everything after)
- :mod:`templearn.picks`      picks tables and their formats (STAR, CSV, DeepFinder XML, copick)
- :mod:`templearn.tilts`      tilt angles (.tlt) and the acquisition record
- :mod:`templearn.config`     config loading with validation that names the bad key
- :mod:`templearn.provenance` parameters, seed and versions recorded beside every output
- :mod:`templearn.structures` structures from a path, a mirror folder or a PDB ID (cached)
- :mod:`templearn.pseudoatoms` density map -> pseudo-atoms
"""

__version__ = "0.1.0"
