"""Quality measures: PSNR/SSIM on MATLAB's Y (``psnr_ssim``), NIQE (``niqe``), one folder evaluation (``evaluate``). No Paddle."""
