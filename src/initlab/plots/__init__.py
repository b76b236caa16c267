"""Every figure initlab draws. Each function takes ``ax=None`` (or ``axes``) and returns the axes;
figures are drawn from stored results (see :func:`initlab.experiment.load`), never by training.

What every figure keeps: layer axes show whole layers (never 2.5), step axes round steps (0, 500,
1000: :func:`round_ticks`), legends sit under the axes, off the data (:func:`legend_below`), and a
log-scale chart with nothing to draw says why in the axes. The figures of an experiment (``lang``)
are drawn in English or in Hebrew (:data:`initlab.report.text.TEXT`), in DejaVu Sans, which has the
Hebrew letters; a right-to-left language's text is given to matplotlib as :func:`rtl_text` says.

The figures live by what they show: ``base.py`` (what every figure shares: colours, ticks, legends,
saving, a language's words), ``chapter.py`` (an experiment's), ``diagnosis.py``, ``residual.py`` (the
residual stream against depth), ``sweep.py``, ``theory.py`` (the phase diagram,
trainability and the c-map), ``watch.py`` (a watched run) and ``signal.py`` (Jacobian spectra, correlation
maps, width sweeps);
every name is importable from here.
"""


from __future__ import annotations

import matplotlib.pyplot as plt

from .base import (COLORS, LEVELS, ROUND_STEPS, RTL_FONT, draws_bidi, legend_below, round_ticks, rtl_text,
                   save_figure)
from .chapter import (contour_panels, experiment_figures, probability_contours, symmetry_trace, tracking_heatmaps,
                      training_curves)
from .diagnosis import diagnosis_panels, diagnosis_plot
from .residual import residual_stream_plot
from .sweep import confidence_curves, contour_thumbnails, sweep_figures, sweep_heatmap
from .signal import correlation_map, jacobian_spectrum, width_sweep
from .theory import c_map_curves, phase_diagram, save_trainability, trainability_heatmap
from .watch import histogram_image, layer_heatmap, layer_lines, update_ratio

__all__ = ["COLORS", "LEVELS", "ROUND_STEPS", "RTL_FONT", "confidence_curves", "contour_panels", "contour_thumbnails",
           "diagnosis_panels", "diagnosis_plot", "draws_bidi", "experiment_figures", "legend_below", "phase_diagram",
           "plt", "probability_contours", "residual_stream_plot", "round_ticks", "rtl_text", "save_figure",
           "save_trainability", "sweep_figures", "sweep_heatmap", "symmetry_trace", "tracking_heatmaps",
           "trainability_heatmap", "training_curves", "update_ratio", "layer_heatmap", "layer_lines", "histogram_image",
           "c_map_curves", "correlation_map", "jacobian_spectrum", "width_sweep"]
