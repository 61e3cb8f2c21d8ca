"""Code that runs *inside* the sandbox: the zygote, the test harness and the seccomp filter.

These modules import only the standard library: the sandbox interpreter runs them as plain scripts
(``python -I -S``), with none of the service's packages on its path.
"""
