"""/api/v1/hooks/{id}: a deploy webhook's delivery (deployments.services.webhooks says how
it is signed). No token: the signature is the credential."""

from ninja import Router, Status

from deployments.api import schemas
from deployments.api.auth import named
from deployments.api.releases import release_or_404
from deployments.services.logins import login_client_address
from deployments.services.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRefused,
    webhook_deliver,
)

router = Router(tags=["webhooks"])

DELIVERY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": TIMESTAMP_HEADER,
            "required": True,
            "schema": {"type": "string"},
            "description": "unix seconds when the call was made (within 5 minutes of now)",
        },
        {
            "in": "header",
            "name": SIGNATURE_HEADER,
            "required": True,
            "schema": {"type": "string"},
            "description": 'sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>',
        },
        {
            "in": "header",
            "name": IDEMPOTENCY_HEADER,
            "required": False,
            "schema": {"type": "string", "maxLength": 200},
            "description": "a retried call with the same key starts no second release",
        },
    ],
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "tags": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "component -> image tag, for this release",
                        },
                        "build": {"type": "boolean"},
                    },
                }
            }
        },
    },
}


@router.post(
    "/hooks/{public_id}",
    auth=None,
    response=schemas.answers(schemas.ReleaseOut, 202)
    | {200: schemas.ReleaseOut, 503: schemas.Errors},
    openapi_extra=DELIVERY_DOC,
    summary="A deploy webhook's delivery (signed; 200 with the same release for a retry)",
)
def deliver(request, public_id: str):
    headers = request.headers
    try:
        release, again = webhook_deliver(
            public_id=named(public_id),
            body=request.body,
            timestamp=headers.get(TIMESTAMP_HEADER),
            signature=headers.get(SIGNATURE_HEADER),
            key=headers.get(IDEMPOTENCY_HEADER),
            address=login_client_address(request),
        )
    except WebhookRefused as exc:
        return Status(exc.status, {"errors": [{"path": "", "message": str(exc)}]})
    return Status(200 if again else 202, schemas.release_out(release_or_404(release.pk)))
