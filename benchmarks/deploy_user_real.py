"""`deploy_user` on the sandbox's real node: the browser's Confirm and `manage.py deploy
--wait`, each against bare helm, with real containers started and probed by a kubelet.

The setting is deploy_real's (the probe image in both components of todo-app's shape,
loaded into the node's containerd before anything is timed, a Cluster row that loads
images there, every run checked to have run there); the measurement is deploy_user's."""

from benchmarks.deploy_real import profile_note, real_node_variant
from benchmarks.deploy_user import measure_user
from benchmarks.report import Result

NAME = "deploy_user_real"
TITLE = (
    "Deploy as a user runs it on the real node: browser Confirm -> succeeded shown, and "
    "manage.py deploy --wait, vs bare helm upgrade --install"
)


def run(*, quick=False):
    result = Result(NAME, TITLE, bare_label="bare helm")
    # the image's loads are deploy_real's figures: here only the untimed one
    with real_node_variant(loads=0) as (variant, _delivery):
        measure_user(result, variant, quick=quick)
    result.notes.append(profile_note())
    return result
