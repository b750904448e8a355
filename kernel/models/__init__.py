"""Model data, baselines, the model repository and evaluation, without torch.

Training (torch) lives in the ``tradekernel-models`` distribution's ``train``
extra; everything here needs only numpy and onnxruntime, so the kernel can
read recordings into model inputs, open stored versions and score them.
"""
