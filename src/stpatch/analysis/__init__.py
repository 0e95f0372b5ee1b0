"""Pictures and maps: forecast strips and animations, sensor traces, attention as important regions."""

from stpatch.analysis.attention import attention_regions, save_attention_figure, upsample_regions
from stpatch.analysis.figures import save_forecast_gif, save_forecast_strip, save_sensor_plot

__all__ = [
    "attention_regions",
    "save_attention_figure",
    "save_forecast_gif",
    "save_forecast_strip",
    "save_sensor_plot",
    "upsample_regions",
]
