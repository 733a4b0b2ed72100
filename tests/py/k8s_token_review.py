"""Calls a TokenReview endpoint with the official Kubernetes Python client.

Used by tests/tests/machine_kubernetes.rs to check the test API server against the vendor's
client: the request must be what the client sends, the answer must parse into its models.
Environment: K8S_HOST, K8S_CA (PEM file), K8S_BEARER, K8S_TOKEN, K8S_AUDIENCES (comma list,
may be empty). Prints one JSON object on stdout.
"""

import json
import os

from kubernetes import client


def main():
    cfg = client.Configuration()
    cfg.host = os.environ["K8S_HOST"]
    cfg.ssl_ca_cert = os.environ["K8S_CA"]
    cfg.api_key = {"authorization": os.environ["K8S_BEARER"]}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    audiences = [a for a in os.environ.get("K8S_AUDIENCES", "").split(",") if a]
    spec = client.V1TokenReviewSpec(token=os.environ["K8S_TOKEN"], audiences=audiences or None)
    with client.ApiClient(cfg) as api_client:
        api = client.AuthenticationV1Api(api_client)
        try:
            review = api.create_token_review(client.V1TokenReview(spec=spec))
        except client.exceptions.ApiException as e:
            body = json.loads(e.body) if e.body else {}
            print(json.dumps({"http_status": e.status, "reason": body.get("reason"),
                              "kind": body.get("kind")}))
            return
    status = review.status
    user = status.user
    print(json.dumps({
        "kind": review.kind,
        "api_version": review.api_version,
        "authenticated": status.authenticated,
        "error": status.error,
        "audiences": status.audiences,
        "username": user.username if user else None,
        "uid": user.uid if user else None,
        "groups": user.groups if user else None,
    }))


if __name__ == "__main__":
    main()
