"""Knowledge-tracing model: the ONNX artefact and manifest the hub loads, and the offline scripts that make them."""
