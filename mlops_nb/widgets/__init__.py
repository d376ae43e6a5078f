"""ipywidgets panels: live views of this kernel session in the notebook."""
