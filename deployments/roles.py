"""The three roles, as Django groups (created by migration 0002, kept in sync by it)."""

VIEWER, DEPLOYER, ADMIN = "viewer", "deployer", "admin"
MODELS = ("cluster", "profile", "component", "configentry", "secretentry", "auditevent")

ROLE_PERMISSIONS = {
    # read everything but secret values (which no page shows anyway)
    VIEWER: [f"view_{model}" for model in MODELS],
    # ... and press Deploy, Roll back, Cancel
    DEPLOYER: [f"view_{model}" for model in MODELS] + ["deploy_profile"],
    # ... and edit profiles, config, secrets and clusters, in the pages and the admin site
    ADMIN: [
        f"{action}_{model}"
        for model in MODELS
        if model != "auditevent"
        for action in ("add", "change", "delete", "view")
    ]
    + ["view_auditevent", "deploy_profile"],
}
