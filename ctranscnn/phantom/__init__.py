"""Procedurally generated stand-ins for ChestX-ray14 (cxr14), RANZCR CLiP (cxr11) and TCMTD (tongue),
written in the real on-disk layouts so every loader and training path runs on them unchanged."""
from ctranscnn.phantom.cxr11 import generate_cxr11, plan_cxr11, render_cxr11
from ctranscnn.phantom.cxr14 import Cxr14Config, generate_cxr14, plan_cxr14, render_cxr14
from ctranscnn.phantom.figures import plot_samples
from ctranscnn.phantom.tongue import generate_tongue, plan_tongue, render_tongue

__all__ = ["Cxr14Config", "generate_cxr11", "generate_cxr14", "generate_tongue", "plan_cxr11", "plan_cxr14",
           "plan_tongue", "plot_samples", "render_cxr11", "render_cxr14", "render_tongue"]
