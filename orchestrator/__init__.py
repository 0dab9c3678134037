"""The orchestrator: the stage graph on one machine, with neither Nextflow nor Docker."""
