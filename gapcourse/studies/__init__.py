"""The studies: the measurements behind the course's committed results (docs and README tables). A learner never
needs them; each module runs one study, resumably, and writes a results file with its provenance."""
