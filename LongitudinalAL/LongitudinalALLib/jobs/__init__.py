"""The Slicer-free worker side of the module: JSON job spec in, result out, in a child process."""
