"""Model serving with seldon-core 1.19: the seldon model class (feature vectors from the online store, the training
dataset's transformations, predictions), local microservice processes with rolling version switches, SeldonDeployment
manifests for Kubernetes, and inference logging into a feature group.

Modules: ``deployment`` (the Python API), ``seldon_model`` (the model class), ``payload`` (request/response
contract), ``served_model`` (a version wired to its view), ``local`` + ``launcher`` + ``processes`` +
``state_files`` (local servers), ``manifest`` (Kubernetes), ``inference_log`` (logging, flush, outcomes),
``settings``, ``client``.
"""
