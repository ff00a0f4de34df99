"""The 145-frame 360-degree orbit stage (``dimensionx orbit``) and SAT checkpoint conversion (``convert-sat``)."""
