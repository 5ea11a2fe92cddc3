"""What the aggregate tests load into the worker, beat and web processes they start."""
