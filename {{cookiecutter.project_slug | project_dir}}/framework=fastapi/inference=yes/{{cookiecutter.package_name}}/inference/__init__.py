"""Model inference: the model (model.py), the bounded runner (runner.py) and the API's schemas."""
