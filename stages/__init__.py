"""The six stages of Template Learning, one subpackage each (installed as ``templearn.stages``)."""
