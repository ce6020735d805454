"""The patient simulator: case records, Fact Unit, Affective Unit, Termination Gate."""
