"""Image files and pixels: read/write (``io``), MATLAB bicubic (``resize``), LR degradations (``degrade``). No Paddle."""
