# The real-node deploy benchmark's workload: the tests' probe server
# (tests/integration/images/probe, the build context) as it is, except that it exits on
# SIGTERM as a server does. The tests' image runs it as PID 1 without a handler, which
# ignores SIGTERM: every deletion would wait the pod's 30 s grace period for the SIGKILL.
ARG BASE=helmdeck/python:3.11
FROM ${BASE}
COPY probe.py /probe.py
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["python3", "-u", "-c", "import runpy, signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); runpy.run_path('/probe.py', run_name='__main__')"]
