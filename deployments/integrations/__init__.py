class IntegrationError(Exception):
    """One error type for every outside system (helm, kubectl, Kubernetes API, Docker).

    `permanent=False` means "try again later" (a daemon or cluster was unreachable, a
    timeout); `permanent=True` means retrying cannot help (bad chart, rejected manifest).
    Messages are written for the user and never contain secret values.
    """

    def __init__(self, message, *, permanent):
        super().__init__(message)
        self.permanent = permanent
