"""regress: what did the kernel start doing differently?

Runs one workload under two kernels with identical BPF tracers, diffs the
captures with stated statistics and renders a bug report.
"""

__version__ = "0.1.0"
