"""Follow-up to baseline registration: pyramid, initialisation, engine, quality control."""
