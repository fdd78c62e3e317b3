"""ONNX export and checks, ONNX Runtime sessions, quantisation and the BentoML service."""
