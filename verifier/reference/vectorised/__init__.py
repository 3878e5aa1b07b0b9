"""The vectorised reference: element-wise formulas differentiated once, evaluated over whole tensors."""
