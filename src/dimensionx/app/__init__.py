"""The web app (``dimensionx app``): a Gradio page on the stage entry functions, no pipeline logic of its own."""
