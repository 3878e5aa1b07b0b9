"""Walking a case over its domain: accuracy sweeps and the curves behind gradverify plot."""
