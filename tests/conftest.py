import os

# Figures are drawn without a display.
os.environ.setdefault('MPLBACKEND', 'Agg')
